package store_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/store"
)

// TestCredentialAbsentFromSQLiteFile writes a known credential, checkpoints the WAL, and reads every file
// of the database: the credential's bytes occur nowhere.
func TestCredentialAbsentFromSQLiteFile(t *testing.T) {
	url := testenv.SQLite(t)
	st := testenv.Store(t, url)
	a, err := st.CreateAccount(ctx(), "Acme")
	if err != nil {
		t.Fatal(err)
	}
	secret := "pk_live_" + strings.Repeat("S3cr3tCanary", 4)
	c, err := st.CreateConnection(ctx(), store.NewConnection{AccountID: a.ID, Type: "klaviyo", Name: "K",
		Credentials: store.Credentials{"api_key": secret}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.ConnectionCredentials(ctx(), c.ID); err != nil || got["api_key"] != secret {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := st.RotateCredentials(ctx()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(url, "sqlite:")
	files, _ := filepath.Glob(path + "*") // the db, -wal, -shm
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	sawDB := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == path {
			sawDB = len(b) > 0
			if !bytes.Contains(b, []byte(c.ID)) {
				t.Fatal("sanity: the connection row is not in the database file")
			}
		}
		for _, needle := range []string{secret, "S3cr3tCanary"} {
			if bytes.Contains(b, []byte(needle)) {
				t.Fatalf("credential bytes found in %s", filepath.Base(f))
			}
		}
	}
	if !sawDB {
		t.Fatal("database file empty")
	}
}
