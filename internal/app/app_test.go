package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/config"
	"github.com/autofloss/autofloss/internal/app"
	"github.com/autofloss/autofloss/internal/testenv"
)

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestStartAndReadiness(t *testing.T) {
	redis := testenv.Redis(t)
	dir := t.TempDir()
	var logs bytes.Buffer
	a, err := app.Start(context.Background(), app.Options{
		ConfigPath: filepath.Join(dir, "absent.yaml"), LogOutput: &logs, Component: "test",
		Getenv: envMap(map[string]string{
			"AUTOFLOSS_DATABASE_URL":     "sqlite:" + filepath.Join(dir, "db", "af.db"),
			"AUTOFLOSS_REDIS_URL":        "redis://" + redis + "/0",
			"AUTOFLOSS_SECRETS_KEY_FILE": filepath.Join(dir, "secret.key"),
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !strings.Contains(logs.String(), `"component":"test"`) || !strings.Contains(logs.String(), "no secrets.keys configured") {
		t.Fatalf("logs: %s", logs.String())
	}
	if v, err := a.Store.SchemaVersion(context.Background()); err != nil || v < 1 {
		t.Fatalf("not migrated: %d %v", v, err)
	}
	srv := httptest.NewServer(a.OpsMux())
	defer srv.Close()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	// Redis gone → not ready.
	_ = a.Redis.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with Redis closed: %d", resp.StatusCode)
	}
}

func TestStartFailsOnBadConfig(t *testing.T) {
	_, err := app.Start(context.Background(), app.Options{
		ConfigPath: filepath.Join(t.TempDir(), "absent.yaml"), LogOutput: io.Discard, NoRedis: true,
		Getenv: envMap(map[string]string{"AUTOFLOSS_LOG_FORMAT": "xml"}),
	})
	if err == nil || err.Error() != `config: log.format: must be json or console, got "xml"` {
		t.Fatalf("err = %v", err)
	}
}

func TestKeyRingFromConfig(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	k2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	r, err := app.KeyRing(config.Secrets{Keys: []config.SecretKey{{ID: "a", Key: k1}, {ID: "b", Key: k2}}, ActiveID: "a"}, zerolog.Nop())
	if err != nil || r.ActiveID() != "a" {
		t.Fatalf("%v %v", r, err)
	}
	id, ct, err := r.Seal([]byte("x"), nil)
	if err != nil || id != "a" {
		t.Fatal(err)
	}
	if _, err := r.Open("a", ct, nil); err != nil {
		t.Fatal(err)
	}
	// The key file path: created once, then reused.
	path := filepath.Join(t.TempDir(), "k")
	r1, err := app.KeyRing(config.Secrets{KeyFile: path}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := app.KeyRing(config.Secrets{KeyFile: path}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_, ct, _ = r1.Seal([]byte("secret"), []byte("cnx"))
	if got, err := r2.Open("file", ct, []byte("cnx")); err != nil || string(got) != "secret" {
		t.Fatalf("key file not reused: %v", err)
	}
}

func TestConsoleLogger(t *testing.T) {
	var b bytes.Buffer
	l, err := app.NewLogger(config.Log{Level: "info", Format: "console"}, &b, "x")
	if err != nil {
		t.Fatal(err)
	}
	l.Info().Msg("hello")
	if strings.HasPrefix(b.String(), "{") || !strings.Contains(b.String(), "hello") {
		t.Fatalf("console output %q", b.String())
	}
	l.Debug().Msg("hidden")
	if strings.Contains(b.String(), "hidden") {
		t.Fatal("debug printed at info level")
	}
}
