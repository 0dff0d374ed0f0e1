package store

import (
	"context"
	"fmt"
	"time"
)

// InFlightLease is how long an in-flight idempotency record blocks retries (409) before a new attempt may
// take it over: long enough for any request, short enough that a crashed API replica does not lock a key
// for the whole TTL.
const InFlightLease = 2 * time.Minute

// BeginIdempotent claims (account, key) for a request whose body hashes to requestHash. started=true means
// the caller owns the key and must call FinishIdempotent (or AbandonIdempotent). started=false returns the
// existing record: State done → replay its Status and Body if RequestHash matches (422 otherwise);
// State in_flight → 409. Expired records are taken over as if absent. Safe under concurrent callers and
// across API replicas: exactly one caller gets started=true.
func (s *Store) BeginIdempotent(ctx context.Context, accountID, key, requestHash string, ttl time.Duration) (rec IdempotencyRecord, started bool, err error) {
	if ttl <= 0 {
		return IdempotencyRecord{}, false, fmt.Errorf("%w: idempotency ttl must be positive", ErrInvalid)
	}
	now := s.now()
	exp := now.Add(InFlightLease)
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO idempotency_keys (account_id, key, request_hash, state, status, body, ttl_seconds, created_at, expires_at)
		VALUES (?, ?, ?, 'in_flight', 0, NULL, ?, ?, ?)
		ON CONFLICT (account_id, key) DO UPDATE SET request_hash = excluded.request_hash, state = 'in_flight', status = 0,
			body = NULL, ttl_seconds = excluded.ttl_seconds, created_at = excluded.created_at, expires_at = excluded.expires_at
		WHERE idempotency_keys.expires_at <= ?`),
		accountID, key, requestHash, int64(ttl/time.Second), s.tv(now), s.tv(exp), s.tv(now))
	if err != nil {
		return IdempotencyRecord{}, false, fmt.Errorf("store: begin idempotency: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return IdempotencyRecord{AccountID: accountID, Key: key, RequestHash: requestHash, State: IdemInFlight,
			CreatedAt: now, ExpiresAt: exp}, true, nil
	}
	rec, err = s.LookupIdempotent(ctx, accountID, key)
	return rec, false, err
}

// FinishIdempotent stores the response of a request begun with BeginIdempotent; it is kept for the ttl
// given to BeginIdempotent.
func (s *Store) FinishIdempotent(ctx context.Context, accountID, key string, status int, body []byte) error {
	now := s.now()
	var ttl int64
	if err := s.db.GetContext(ctx, &ttl, s.q(`SELECT ttl_seconds FROM idempotency_keys WHERE account_id = ? AND key = ?`), accountID, key); err != nil {
		return notFound(err)
	}
	if body == nil {
		body = []byte{}
	}
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE idempotency_keys SET state = 'done', status = ?, body = ?, expires_at = ?
		WHERE account_id = ? AND key = ?`), status, body, s.tv(now.Add(time.Duration(ttl)*time.Second)), accountID, key)
	return err
}

// AbandonIdempotent forgets an in-flight key (the request failed in a way that should not be replayed,
// e.g. a 5xx), so a retry runs again.
func (s *Store) AbandonIdempotent(ctx context.Context, accountID, key string) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM idempotency_keys WHERE account_id = ? AND key = ? AND state = 'in_flight'`), accountID, key)
	return err
}

// LookupIdempotent reads a live record; expired ones are ErrNotFound.
func (s *Store) LookupIdempotent(ctx context.Context, accountID, key string) (IdempotencyRecord, error) {
	var r IdempotencyRecord
	var created, expires dbTime
	var body []byte
	err := s.db.QueryRowContext(ctx, s.q(`SELECT account_id, key, request_hash, state, status, body, created_at, expires_at
		FROM idempotency_keys WHERE account_id = ? AND key = ? AND expires_at > ?`), accountID, key, s.tv(s.now())).
		Scan(&r.AccountID, &r.Key, &r.RequestHash, &r.State, &r.Status, &body, &created, &expires)
	if err != nil {
		return IdempotencyRecord{}, notFound(err)
	}
	r.Body, r.CreatedAt, r.ExpiresAt = body, created.T, expires.T
	return r, nil
}

// PurgeExpiredIdempotency deletes expired records and returns how many.
func (s *Store) PurgeExpiredIdempotency(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM idempotency_keys WHERE expires_at <= ?`), s.tv(s.now()))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// AcquireLease takes the per-connection run lease for holder until ttl from now. It succeeds when the
// lease is free, expired, or already held by holder (then it is extended). Exactly one of several
// concurrent callers wins.
func (s *Store) AcquireLease(ctx context.Context, cnxID, holder string, ttl time.Duration) (bool, error) {
	now := s.now()
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO connection_leases (connection_id, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (connection_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE connection_leases.expires_at <= ? OR connection_leases.holder = excluded.holder`),
		cnxID, holder, s.tv(now.Add(ttl)), s.tv(now))
	if err != nil {
		return false, fmt.Errorf("store: acquire lease: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RenewLease extends a lease holder still holds; false means it was lost (stop working).
func (s *Store) RenewLease(ctx context.Context, cnxID, holder string, ttl time.Duration) (bool, error) {
	now := s.now()
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE connection_leases SET expires_at = ? WHERE connection_id = ? AND holder = ? AND expires_at > ?`),
		s.tv(now.Add(ttl)), cnxID, holder, s.tv(now))
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ReleaseLease frees the lease if holder holds it.
func (s *Store) ReleaseLease(ctx context.Context, cnxID, holder string) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM connection_leases WHERE connection_id = ? AND holder = ?`), cnxID, holder)
	return err
}
