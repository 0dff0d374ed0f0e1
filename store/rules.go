package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// NewRule is one keyword rule to add. The caller validates the keyword (api.md: trimmed, 1–254 chars, no
// inner whitespace); the store checks List and MatchOn and enforces uniqueness per
// (connection, list, lower(keyword), match_on).
type NewRule struct {
	List    string
	Keyword string
	MatchOn string // "" = MatchLocalPart
}

const ruleCols = `id, connection_id, list, keyword, match_on, created_at`

func scanRule(sc interface{ Scan(...any) error }, extra ...any) (Rule, error) {
	var r Rule
	var created dbTime
	if err := sc.Scan(append([]any{&r.ID, &r.ConnectionID, &r.List, &r.Keyword, &r.MatchOn, &created}, extra...)...); err != nil {
		return Rule{}, notFound(err)
	}
	r.CreatedAt = created.T
	return r, nil
}

func (r *NewRule) check() error {
	if r.MatchOn == "" {
		r.MatchOn = MatchLocalPart
	}
	if r.List != Whitelist && r.List != Blacklist {
		return fmt.Errorf("%w: list must be whitelist or blacklist", ErrInvalid)
	}
	switch r.MatchOn {
	case MatchLocalPart, MatchDomain, MatchEmail:
	default:
		return fmt.Errorf("%w: match_on must be local_part, domain or email", ErrInvalid)
	}
	if r.Keyword == "" {
		return fmt.Errorf("%w: keyword must not be empty", ErrInvalid)
	}
	return nil
}

// ownsConnection checks, inside tx, that the connection belongs to the account.
func (s *Store) ownsConnection(ctx context.Context, tx sqlx.QueryerContext, accountID, cnxID string) error {
	var n int
	if err := sqlx.GetContext(ctx, tx, &n, s.q(`SELECT COUNT(*) FROM connections WHERE id = ? AND account_id = ?`), cnxID, accountID); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// addRule inserts one rule or returns the existing equal one (created=false).
func (s *Store) addRule(ctx context.Context, tx *sqlx.Tx, cnxID string, nr NewRule) (Rule, bool, error) {
	r := Rule{ID: NewID(PrefixRule), ConnectionID: cnxID, List: nr.List, Keyword: nr.Keyword, MatchOn: nr.MatchOn, CreatedAt: s.now()}
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO keyword_rules (id, connection_id, list, keyword, keyword_lower, match_on, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (connection_id, list, keyword_lower, match_on) DO NOTHING`),
		r.ID, cnxID, r.List, r.Keyword, strings.ToLower(r.Keyword), r.MatchOn, s.tv(r.CreatedAt))
	if err != nil {
		return Rule{}, false, fmt.Errorf("store: add rule: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return r, true, nil
	}
	existing, err := scanRule(tx.QueryRowxContext(ctx, s.q(`SELECT `+ruleCols+` FROM keyword_rules
		WHERE connection_id = ? AND list = ? AND keyword_lower = ? AND match_on = ?`), cnxID, r.List, strings.ToLower(r.Keyword), r.MatchOn))
	return existing, false, err
}

// AddRule adds a rule to the account's connection. An equal rule (same list, match_on and keyword
// case-insensitively) is returned instead with created=false.
func (s *Store) AddRule(ctx context.Context, accountID, cnxID string, nr NewRule) (rule Rule, created bool, err error) {
	if err := nr.check(); err != nil {
		return Rule{}, false, err
	}
	err = s.withTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.ownsConnection(ctx, tx, accountID, cnxID); err != nil {
			return err
		}
		rule, created, err = s.addRule(ctx, tx, cnxID, nr)
		return err
	})
	return rule, created, err
}

// AddRules adds many rules in one transaction, all or nothing; existing equal rules are returned as they
// are. The result is in input order.
func (s *Store) AddRules(ctx context.Context, accountID, cnxID string, rules []NewRule) ([]Rule, error) {
	for i := range rules {
		if err := rules[i].check(); err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
	}
	out := make([]Rule, 0, len(rules))
	err := s.withTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.ownsConnection(ctx, tx, accountID, cnxID); err != nil {
			return err
		}
		for _, nr := range rules {
			r, _, err := s.addRule(ctx, tx, cnxID, nr)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListRules lists one list of the account's connection, oldest first.
func (s *Store) ListRules(ctx context.Context, accountID, cnxID, list string, p Page) ([]Rule, string, error) {
	after, err := p.after()
	if err != nil {
		return nil, "", err
	}
	if err := s.ownsConnection(ctx, s.db, accountID, cnxID); err != nil {
		return nil, "", err
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+ruleCols+`, seq FROM keyword_rules
		WHERE connection_id = ? AND list = ? AND seq > ? ORDER BY seq LIMIT ?`), cnxID, list, after, p.limit()+1)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []Rule
	var seqs []int64
	for rows.Next() {
		var seq int64
		r, err := scanRule(rows, &seq)
		if err != nil {
			return nil, "", err
		}
		out, seqs = append(out, r), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := trimPage(out, seqs, p.limit())
	return out, next, nil
}

// DeleteRule deletes a rule of the given list of the account's connection.
func (s *Store) DeleteRule(ctx context.Context, accountID, cnxID, list, ruleID string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM keyword_rules WHERE id = ? AND list = ? AND connection_id = ?
		AND connection_id IN (SELECT id FROM connections WHERE id = ? AND account_id = ?)`), ruleID, list, cnxID, cnxID, accountID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RulesForConnection returns every rule of a connection, both lists, oldest first (pipeline).
func (s *Store) RulesForConnection(ctx context.Context, cnxID string) ([]Rule, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+ruleCols+` FROM keyword_rules WHERE connection_id = ? ORDER BY seq`), cnxID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Rule
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
