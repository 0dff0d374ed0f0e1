package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/internal/app"
	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/verify/verifytest"
)

// TestSyncCommand runs `autofloss sync` in-process against the Klaviyo fake and the loopback DNS world
// (no Redis) and checks the run and the summary table.
func TestSyncCommand(t *testing.T) {
	world, err := verifytest.NewWorld(verifytest.WorldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer world.Close()
	d := esptest.DefaultDomains()
	fake, err := esptest.Start("klaviyo", esptest.Options{Seed: esptest.Seed{N: 150, Seed: 4, Domains: &d}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	body := fmt.Sprintf(`database:
  url: %q
secrets:
  key_file: %q
log:
  level: warn
esp:
  klaviyo:
    base_url: %q
verify:
  dns_servers: [%q]
  dns_timeout: 300ms
  connect_timeout: 300ms
  command_timeout: 300ms
`, testenv.SQLite(t), filepath.Join(dir, "secret.key"), fake.URL(), world.DNSAddr)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := app.Start(ctx, app.Options{ConfigPath: cfg, NoRedis: true, LogOutput: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	acct, _ := a.Store.CreateAccount(ctx, "cli")
	if _, err := a.Store.AddCredits(ctx, acct.ID, 1000, "", "grant"); err != nil {
		t.Fatal(err)
	}
	cnx, err := a.Store.CreateConnection(ctx, store.NewConnection{AccountID: acct.ID, Type: "klaviyo", Name: "k",
		Settings: json.RawMessage(`{"aggressiveness":"normal","on_failure":"none"}`), Credentials: fake.Credentials(true)})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()

	code, out, errOut := cli(t, "sync", "-config", cfg, cnx.ID)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"state                      done", "STATUS", "disposable", "total"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	for i := 0; i < fake.N(); i++ {
		if e := fake.Seeded(i).Email; strings.Contains(out+errOut, e) {
			t.Fatalf("output contains a contact address")
		}
	}
	if code, _, _ := cli(t, "sync", "-config", cfg, "cnx_missing"); code != 1 {
		t.Errorf("unknown connection: exit %d", code)
	}
	if code, _, _ := cli(t, "sync", "-config", cfg); code != 2 {
		t.Errorf("no connection id: exit %d", code)
	}
}
