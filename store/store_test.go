package store_test

import (
	"context"
	"testing"

	"github.com/autofloss/autofloss/internal/testenv"
)

func TestMigrateTwice(t *testing.T) {
	for name, url := range testenv.Databases(t) {
		t.Run(name, func(t *testing.T) {
			st := testenv.Store(t, url)
			n, err := st.Migrate(context.Background())
			if err != nil || n != 0 {
				t.Fatalf("second migrate: n=%d err=%v", n, err)
			}
			v, err := st.SchemaVersion(context.Background())
			if err != nil || v != 1 {
				t.Fatalf("version %d %v", v, err)
			}
		})
	}
}
