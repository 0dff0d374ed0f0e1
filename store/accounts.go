package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"

	"github.com/jmoiron/sqlx"
)

// APIKeyPrefix starts every API key.
const APIKeyPrefix = "mf_live_"

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// CreateAccount creates an account with a zero credit balance.
func (s *Store) CreateAccount(ctx context.Context, name string) (Account, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return Account{}, fmt.Errorf("%w: account name must not be empty", ErrInvalid)
	}
	a := Account{ID: NewID(PrefixAccount), Name: name, CreatedAt: s.now()}
	err := s.withTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)`),
			a.ID, a.Name, s.tv(a.CreatedAt)); err != nil {
			return fmt.Errorf("store: create account: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO credit_balances (account_id, balance, updated_at) VALUES (?, 0, ?)`),
			a.ID, s.tv(a.CreatedAt)); err != nil {
			return fmt.Errorf("store: create balance: %w", err)
		}
		return nil
	})
	return a, err
}

// GetAccount reads one account.
func (s *Store) GetAccount(ctx context.Context, id string) (Account, error) {
	var a Account
	var created dbTime
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id, name, created_at FROM accounts WHERE id = ?`), id).
		Scan(&a.ID, &a.Name, &created)
	if err != nil {
		return Account{}, notFound(err)
	}
	a.CreatedAt = created.T
	return a, nil
}

// ListAccounts lists every account, oldest first.
func (s *Store) ListAccounts(ctx context.Context) ([]Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created_at FROM accounts ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		var a Account
		var created dbTime
		if err := rows.Scan(&a.ID, &a.Name, &created); err != nil {
			return nil, err
		}
		a.CreatedAt = created.T
		out = append(out, a)
	}
	return out, rows.Err()
}

// HashAPIKey is the stored form of a key: hex SHA-256.
func HashAPIKey(plaintext string) string {
	h := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(h[:])
}

// newAPIKeyPlaintext returns mf_live_ + 32 random base62 characters.
func newAPIKeyPlaintext() (string, error) {
	var b strings.Builder
	b.WriteString(APIKeyPrefix)
	max := big.NewInt(int64(len(base62)))
	for i := 0; i < 32; i++ {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b.WriteByte(base62[n.Int64()])
	}
	return b.String(), nil
}

// CreateAPIKey makes a key for the account. The plaintext is returned once and never stored.
func (s *Store) CreateAPIKey(ctx context.Context, accountID string) (plaintext string, key APIKey, err error) {
	if _, err := s.GetAccount(ctx, accountID); err != nil {
		return "", APIKey{}, err
	}
	plaintext, err = newAPIKeyPlaintext()
	if err != nil {
		return "", APIKey{}, err
	}
	key = APIKey{ID: NewID(PrefixAPIKey), AccountID: accountID, Prefix: plaintext[:len(APIKeyPrefix)+4], CreatedAt: s.now()}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO api_keys (id, account_id, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)`),
		key.ID, key.AccountID, HashAPIKey(plaintext), key.Prefix, s.tv(key.CreatedAt))
	if err != nil {
		return "", APIKey{}, fmt.Errorf("store: create api key: %w", err)
	}
	return plaintext, key, nil
}

const apiKeyCols = `id, account_id, prefix, created_at, revoked_at`

func scanAPIKey(sc interface{ Scan(...any) error }) (APIKey, error) {
	var k APIKey
	var created, revoked dbTime
	if err := sc.Scan(&k.ID, &k.AccountID, &k.Prefix, &created, &revoked); err != nil {
		return APIKey{}, notFound(err)
	}
	k.CreatedAt, k.RevokedAt = created.T, revoked.ptr()
	return k, nil
}

// AuthenticateAPIKey finds the live key with this plaintext. Unknown and revoked keys are both ErrNotFound.
func (s *Store) AuthenticateAPIKey(ctx context.Context, plaintext string) (APIKey, error) {
	if !strings.HasPrefix(plaintext, APIKeyPrefix) {
		return APIKey{}, ErrNotFound
	}
	return scanAPIKey(s.db.QueryRowContext(ctx,
		s.q(`SELECT `+apiKeyCols+` FROM api_keys WHERE hash = ? AND revoked_at IS NULL`), HashAPIKey(plaintext)))
}

// RevokeAPIKey revokes a key by id (idempotent: revoking twice keeps the first time).
func (s *Store) RevokeAPIKey(ctx context.Context, keyID string) (APIKey, error) {
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`),
		s.tv(s.now()), keyID); err != nil {
		return APIKey{}, err
	}
	return scanAPIKey(s.db.QueryRowContext(ctx, s.q(`SELECT `+apiKeyCols+` FROM api_keys WHERE id = ?`), keyID))
}

// ListAPIKeys lists an account's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, accountID string) ([]APIKey, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+apiKeyCols+` FROM api_keys WHERE account_id = ? ORDER BY seq`), accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}
