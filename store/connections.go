package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// NewConnection is what CreateConnection needs. Settings must be a JSON object (nil = {}).
type NewConnection struct {
	AccountID        string
	Type             string
	Name             string
	AutoFlossEnabled bool
	Settings         json.RawMessage
	Credentials      Credentials
}

// ConnectionUpdate is a partial update: nil fields are unchanged.
type ConnectionUpdate struct {
	Name             *string
	AutoFlossEnabled *bool
	Settings         json.RawMessage // replaces the whole settings document
	// Status: StatusActive clears DisconnectedReason; StatusDisconnected needs DisconnectedReason
	// (ReasonUser when nil).
	Status             *string
	DisconnectedReason *string
	Credentials        Credentials // re-sealed with the active key
}

// ConnectionFilter narrows ListConnections; empty fields match everything.
type ConnectionFilter struct {
	Type   string
	Status string
}

const connCols = `id, account_id, type, name, status, disconnected_reason, auto_floss_enabled, verify_first, ` +
	`settings, credentials_key_id, webhook_secret, last_synced_at, created_at, updated_at`

func scanConnection(sc interface{ Scan(...any) error }, extra ...any) (Connection, error) {
	var c Connection
	var settings string
	var last, created, updated dbTime
	dst := append([]any{&c.ID, &c.AccountID, &c.Type, &c.Name, &c.Status, &c.DisconnectedReason, &c.AutoFlossEnabled,
		&c.VerifyFirst, &settings, &c.KeyID, &c.WebhookSecret, &last, &created, &updated}, extra...)
	if err := sc.Scan(dst...); err != nil {
		return Connection{}, notFound(err)
	}
	c.Settings = json.RawMessage(settings)
	c.LastSyncedAt, c.CreatedAt, c.UpdatedAt = last.ptr(), created.T, updated.T
	return c, nil
}

// verifyFirstOf reads settings.verify_first, validating that settings is a JSON object.
func verifyFirstOf(settings json.RawMessage) (bool, error) {
	var v struct {
		VerifyFirst bool `json:"verify_first"`
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(settings, &obj); err != nil || obj == nil {
		return false, fmt.Errorf("%w: settings must be a JSON object", ErrInvalid)
	}
	if raw, ok := obj["verify_first"]; ok {
		if err := json.Unmarshal(raw, &v.VerifyFirst); err != nil {
			return false, fmt.Errorf("%w: settings.verify_first must be a boolean", ErrInvalid)
		}
	}
	return v.VerifyFirst, nil
}

// seal encrypts credentials bound to the connection id.
func (s *Store) seal(cnxID string, c Credentials) (keyID string, sealed []byte, err error) {
	if s.keys == nil {
		return "", nil, ErrNoKeyRing
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return "", nil, err
	}
	return s.keys.Seal(plain, []byte(cnxID))
}

func newWebhookSecret() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("store: crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// CreateConnection stores a new active connection with sealed credentials.
func (s *Store) CreateConnection(ctx context.Context, nc NewConnection) (Connection, error) {
	if nc.AccountID == "" || nc.Type == "" || strings.TrimSpace(nc.Name) == "" {
		return Connection{}, fmt.Errorf("%w: account, type and name are required", ErrInvalid)
	}
	if len(nc.Settings) == 0 {
		nc.Settings = json.RawMessage(`{}`)
	}
	vf, err := verifyFirstOf(nc.Settings)
	if err != nil {
		return Connection{}, err
	}
	now := s.now()
	c := Connection{
		ID: NewID(PrefixConnection), AccountID: nc.AccountID, Type: nc.Type, Name: nc.Name, Status: StatusActive,
		AutoFlossEnabled: nc.AutoFlossEnabled, VerifyFirst: vf, Settings: nc.Settings,
		WebhookSecret: newWebhookSecret(), CreatedAt: now, UpdatedAt: now,
	}
	keyID, sealed, err := s.seal(c.ID, nc.Credentials)
	if err != nil {
		return Connection{}, err
	}
	c.KeyID = keyID
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO connections (id, account_id, type, name, status, disconnected_reason,
		auto_floss_enabled, verify_first, settings, credentials, credentials_key_id, webhook_secret, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?)`),
		c.ID, c.AccountID, c.Type, c.Name, c.Status, c.AutoFlossEnabled, c.VerifyFirst, string(c.Settings),
		sealed, c.KeyID, c.WebhookSecret, s.tv(now), s.tv(now))
	if err != nil {
		if strings.Contains(err.Error(), "FOREIGN KEY") || strings.Contains(err.Error(), "foreign key") {
			return Connection{}, ErrNotFound // no such account
		}
		return Connection{}, fmt.Errorf("store: create connection: %w", err)
	}
	return c, nil
}

// GetConnection reads the account's connection; another account's is ErrNotFound.
func (s *Store) GetConnection(ctx context.Context, accountID, id string) (Connection, error) {
	return scanConnection(s.db.QueryRowContext(ctx,
		s.q(`SELECT `+connCols+` FROM connections WHERE id = ? AND account_id = ?`), id, accountID))
}

// ConnectionByID reads any connection (worker, scheduler, webhooks).
func (s *Store) ConnectionByID(ctx context.Context, id string) (Connection, error) {
	return scanConnection(s.db.QueryRowContext(ctx, s.q(`SELECT `+connCols+` FROM connections WHERE id = ?`), id))
}

// ListConnections lists the account's connections, oldest first.
func (s *Store) ListConnections(ctx context.Context, accountID string, f ConnectionFilter, p Page) ([]Connection, string, error) {
	after, err := p.after()
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + connCols + `, seq FROM connections WHERE account_id = ? AND seq > ?`
	args := []any{accountID, after}
	if f.Type != "" {
		q += ` AND type = ?`
		args = append(args, f.Type)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, p.limit()+1)
	return s.queryConnections(ctx, q, args, p.limit())
}

func (s *Store) queryConnections(ctx context.Context, q string, args []any, limit int) ([]Connection, string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []Connection
	var seqs []int64
	for rows.Next() {
		var seq int64
		c, err := scanConnection(rows, &seq)
		if err != nil {
			return nil, "", err
		}
		out = append(out, c)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := trimPage(out, seqs, limit)
	return out, next, nil
}

// ConnectionCounts counts the account's connections by type (types with none are absent).
func (s *Store) ConnectionCounts(ctx context.Context, accountID string) (map[string]ConnectionCount, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT type, COUNT(*),
		SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END) FROM connections WHERE account_id = ? GROUP BY type`), accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]ConnectionCount{}
	for rows.Next() {
		var t string
		var c ConnectionCount
		if err := rows.Scan(&t, &c.Total, &c.Active); err != nil {
			return nil, err
		}
		out[t] = c
	}
	return out, rows.Err()
}

// UpdateConnection applies a partial update to the account's connection and returns it.
func (s *Store) UpdateConnection(ctx context.Context, accountID, id string, u ConnectionUpdate) (Connection, error) {
	sets := []string{}
	args := []any{}
	if u.Name != nil {
		if strings.TrimSpace(*u.Name) == "" {
			return Connection{}, fmt.Errorf("%w: name must not be empty", ErrInvalid)
		}
		sets, args = append(sets, "name = ?"), append(args, *u.Name)
	}
	if u.AutoFlossEnabled != nil {
		sets, args = append(sets, "auto_floss_enabled = ?"), append(args, *u.AutoFlossEnabled)
	}
	if u.Settings != nil {
		vf, err := verifyFirstOf(u.Settings)
		if err != nil {
			return Connection{}, err
		}
		sets, args = append(sets, "settings = ?", "verify_first = ?"), append(args, string(u.Settings), vf)
	}
	if u.Status != nil {
		switch *u.Status {
		case StatusActive:
			sets, args = append(sets, "status = ?", "disconnected_reason = ''"), append(args, StatusActive)
		case StatusDisconnected:
			reason := ReasonUser
			if u.DisconnectedReason != nil {
				reason = *u.DisconnectedReason
			}
			if reason != ReasonUser && reason != ReasonCredentialsRevoked {
				return Connection{}, fmt.Errorf("%w: disconnected reason %q", ErrInvalid, reason)
			}
			sets, args = append(sets, "status = ?", "disconnected_reason = ?"), append(args, StatusDisconnected, reason)
		default:
			return Connection{}, fmt.Errorf("%w: status %q", ErrInvalid, *u.Status)
		}
	}
	if u.Credentials != nil {
		keyID, sealed, err := s.seal(id, u.Credentials)
		if err != nil {
			return Connection{}, err
		}
		sets, args = append(sets, "credentials = ?", "credentials_key_id = ?"), append(args, sealed, keyID)
	}
	sets, args = append(sets, "updated_at = ?"), append(args, s.tv(s.now()))
	args = append(args, id, accountID)
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE connections SET `+strings.Join(sets, ", ")+` WHERE id = ? AND account_id = ?`), args...)
	if err != nil {
		return Connection{}, fmt.Errorf("store: update connection: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Connection{}, ErrNotFound
	}
	return s.GetConnection(ctx, accountID, id)
}

// MarkCredentialsRevoked disconnects a connection whose platform refuses its credentials (worker).
func (s *Store) MarkCredentialsRevoked(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE connections SET status = 'disconnected', disconnected_reason = ?, updated_at = ?
		WHERE id = ?`), ReasonCredentialsRevoked, s.tv(s.now()), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ConnectionCredentials unseals a connection's credentials (worker, reconnect). Never log the result.
func (s *Store) ConnectionCredentials(ctx context.Context, id string) (Credentials, error) {
	if s.keys == nil {
		return nil, ErrNoKeyRing
	}
	var keyID string
	var sealed []byte
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT credentials_key_id, credentials FROM connections WHERE id = ?`), id).
		Scan(&keyID, &sealed); err != nil {
		return nil, notFound(err)
	}
	plain, err := s.keys.Open(keyID, sealed, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("store: credentials of %s: %w", id, err)
	}
	var c Credentials
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, fmt.Errorf("store: credentials of %s: not a JSON object", id)
	}
	return c, nil
}

// RotateCredentials re-seals every stored credential with the active key and returns how many it
// re-sealed. Each connection is re-sealed in its own short transaction, so it can run while the service
// is up; a connection whose ciphertext no key opens stops the rotation with an error naming it.
func (s *Store) RotateCredentials(ctx context.Context) (int, error) {
	if s.keys == nil {
		return 0, ErrNoKeyRing
	}
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, `SELECT id FROM connections ORDER BY seq`); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		err := s.withTx(ctx, func(tx *sqlx.Tx) error {
			var keyID string
			var sealed []byte
			if err := tx.QueryRowxContext(ctx, s.q(`SELECT credentials_key_id, credentials FROM connections WHERE id = ?`+s.forUpdate()), id).
				Scan(&keyID, &sealed); err != nil {
				return err
			}
			plain, err := s.keys.Open(keyID, sealed, []byte(id))
			if err != nil {
				return fmt.Errorf("store: rotate %s: %w", id, err)
			}
			newID, resealed, err := s.keys.Seal(plain, []byte(id))
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, s.q(`UPDATE connections SET credentials = ?, credentials_key_id = ? WHERE id = ?`), resealed, newID, id)
			return err
		})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// DueQuery selects connections the scheduler should enqueue.
type DueQuery struct {
	Now                 time.Time
	FlossInterval       time.Duration // auto-floss connections whose last sync is older than this
	VerifyFirstInterval time.Duration // verify_first connections whose last sync is older than this
	// StaleAfter: a queued/running run not updated for this long no longer blocks its connection
	// (its worker died); 0 = 1 hour.
	StaleAfter time.Duration
	Page       Page // cursor pagination in connection order (Limit up to 10,000; 0 = 500)
}

// duePredicate is what makes a connection (alias c) due, beyond being active with credits; its
// parameters: true, the floss cutoff, true, the verify_first cutoff, the stale-run cutoff.
const duePredicate = `
		AND (
			(c.auto_floss_enabled = ? AND (c.last_synced_at IS NULL OR c.last_synced_at <= ?))
			OR (c.verify_first = ? AND (c.last_synced_at IS NULL OR c.last_synced_at <= ?))
			OR EXISTS (SELECT 1 FROM floss_runs p WHERE p.connection_id = c.id AND p.state = 'paused_no_credits')
		)
		AND NOT EXISTS (SELECT 1 FROM floss_runs r WHERE r.connection_id = c.id
			AND r.state IN ('queued', 'running') AND r.updated_at > ?)`

// dueDefaults fills a DueQuery's defaults (StaleAfter 1 hour, Limit 500 up to 10,000, Now the store's
// clock) and decodes its cursor.
func (s *Store) dueDefaults(q DueQuery) (_ DueQuery, after int64, limit int, now time.Time, err error) {
	if after, err = q.Page.after(); err != nil {
		return q, 0, 0, time.Time{}, err
	}
	limit = min(q.Page.Limit, 10000)
	if limit <= 0 {
		limit = 500
	}
	if q.StaleAfter <= 0 {
		q.StaleAfter = time.Hour
	}
	if now = q.Now; now.IsZero() {
		now = s.now()
	}
	return q, after, limit, now, nil
}

// DueConnections returns active connections whose account has credits and no live run, that are either
// auto-floss enabled and past FlossInterval, verify_first and past VerifyFirstInterval, or hold a run
// paused for lack of credits (credits have arrived since).
func (s *Store) DueConnections(ctx context.Context, q DueQuery) ([]Connection, string, error) {
	q, after, limit, now, err := s.dueDefaults(q)
	if err != nil {
		return nil, "", err
	}
	cols := "c." + strings.Join(strings.Split(connCols, ", "), ", c.")
	// +c.status, not c.status: SQLite would otherwise search connections_due (status, last_synced_at) for
	// status = 'active' (nearly every row), then sort by seq: every page scanned all active connections,
	// running the two floss_runs subqueries for each, so a tick was quadratic (100,000 due connections:
	// 83 s, found by `autofloss bench -only scheduler`). The unary plus keeps the walk on the primary key
	// from the cursor (rowid > ?), so one tick reads the table once at most (EXPLAIN QUERY PLAN confirms).
	// PostgreSQL has no unary plus on text; c.status || '' hides the column from its planner the same way
	// (it had the same quadratic tick: 100,000 due in 76.1 s with c.status, 11.1 s with c.status || '').
	status := "c.status || ''"
	if s.dialect == SQLite {
		status = "+c.status"
	}
	query := `SELECT ` + cols + `, c.seq FROM connections c JOIN credit_balances b ON b.account_id = c.account_id
		WHERE c.seq > ? AND ` + status + ` = 'active' AND b.balance > 0 ` + duePredicate + `
		ORDER BY c.seq LIMIT ?`
	args := []any{after, true, s.tv(now.Add(-q.FlossInterval)), true, s.tv(now.Add(-q.VerifyFirstInterval)),
		s.tv(now.Add(-q.StaleAfter)), limit + 1}
	return s.queryConnections(ctx, query, args, limit)
}
