package store

import "context"

// MigrateTo exposes migrateTo to the external tests (migration upgrade tests).
func (s *Store) MigrateTo(ctx context.Context, upTo int64) (int, error) {
	return s.migrateTo(ctx, upTo)
}
