package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autofloss/autofloss/internal/testenv"
)

// writeConfig writes a config for a test: the given database, Redis and a key file in a temp dir.
func writeConfig(t *testing.T, dbURL, redisAddr string) string {
	t.Helper()
	dir := t.TempDir()
	body := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
database:
  url: %q
secrets:
  key_file: %q
log:
  level: warn
`, dbURL, filepath.Join(dir, "secret.key"))
	if redisAddr != "" {
		body += fmt.Sprintf("redis:\n  url: redis://%s/0\n", redisAddr)
	}
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// cli runs one command in-process and returns its exit code, stdout and stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestAdminCommands(t *testing.T) {
	for name, url := range testenv.Databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg := writeConfig(t, url, "")
			steps := []struct {
				args []string
				code int
				out  string // regexp stdout must match
			}{
				{[]string{"migrate", "-config", cfg}, 0, `schema version [0-9]+\n`},
				{[]string{"accounts", "create", "-config", cfg}, 2, `^$`},
				{[]string{"accounts", "create", "-config", cfg, "--name", "Acme Inc"}, 0, `^acc_[0-9a-f]{24}\n$`},
			}
			for _, s := range steps {
				code, out, errOut := cli(t, s.args...)
				if code != s.code || !regexp.MustCompile(s.out).MatchString(out) {
					t.Fatalf("%v: code %d out %q err %q", s.args, code, out, errOut)
				}
			}
			_, out, _ := cli(t, "accounts", "create", "-config", cfg, "--name", "Acme")
			acc := strings.TrimSpace(out)
			code, out, errOut := cli(t, "apikeys", "create", "-config", cfg, "--account", acc)
			if code != 0 || !regexp.MustCompile(`^mf_live_[0-9A-Za-z]{32}\n$`).MatchString(out) || !strings.Contains(errOut, "key_") {
				t.Fatalf("apikeys create: %d %q %q", code, out, errOut)
			}
			keyID := regexp.MustCompile(`key_[0-9a-f]{24}`).FindString(errOut)
			if code, _, _ := cli(t, "apikeys", "create", "-config", cfg, "--account", "acc_nope"); code != 1 {
				t.Fatalf("apikeys create for a missing account: %d", code)
			}
			if code, out, _ := cli(t, "apikeys", "list", "-config", cfg, "--account", acc); code != 0 || !strings.Contains(out, keyID) {
				t.Fatalf("apikeys list: %d %q", code, out)
			}
			if code, out, _ := cli(t, "apikeys", "revoke", "-config", cfg, "--id", keyID); code != 0 || !strings.Contains(out, "revoked "+keyID) {
				t.Fatalf("apikeys revoke: %d %q", code, out)
			}
			if code, out, _ := cli(t, "credits", "add", "-config", cfg, "--account", acc, "--amount", "500", "--ref", "order-7"); code != 0 || out != "balance 500\n" {
				t.Fatalf("credits add: %d %q", code, out)
			}
			if code, out, _ := cli(t, "credits", "add", "-config", cfg, "--account", acc, "--amount", "500", "--ref", "order-7"); code != 0 || out != "balance 500\n" {
				t.Fatalf("credits add replay: %d %q", code, out)
			}
			if code, _, _ := cli(t, "credits", "add", "-config", cfg, "--account", acc, "--amount", "-1"); code != 2 {
				t.Fatalf("negative amount: %d", code)
			}
			if code, out, _ := cli(t, "credits", "show", "-config", cfg, "--account", acc); code != 0 || !strings.HasPrefix(out, "balance 500\n") || !strings.Contains(out, "order-7") {
				t.Fatalf("credits show: %d %q", code, out)
			}
			if code, out, _ := cli(t, "secrets", "rotate", "-config", cfg); code != 0 || !strings.Contains(out, "re-sealed 0") {
				t.Fatalf("secrets rotate: %d %q", code, out)
			}
			if code, _, _ := cli(t, "frobnicate"); code != 2 {
				t.Fatalf("unknown command: %d", code)
			}
			if code, out, _ := cli(t, "secrets", "generate"); code != 0 || len(strings.TrimSpace(out)) != 44 {
				t.Fatalf("secrets generate: %d %q", code, out)
			}
		})
	}
}

// TestProcessesStopOnSIGTERM builds each binary, starts it against a private Redis and a temporary
// SQLite file, waits until it is up, sends SIGTERM and expects exit status 0 promptly.
func TestProcessesStopOnSIGTERM(t *testing.T) {
	redis := testenv.Redis(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../api", "../worker", "../scheduler", ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cases := []struct {
		name string
		args []string
		up   string // a log message that says the process is running
	}{
		{"api", nil, "http server listening"},
		{"worker", nil, "worker started"},
		{"scheduler", nil, "scheduler started"},
		{"autofloss", []string{"serve"}, "scheduler started"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, testenv.SQLite(t), redis)
			// log.level info so the "up" line is printed.
			if err := os.WriteFile(cfg, bytes.Replace(mustRead(t, cfg), []byte("level: warn"), []byte("level: info"), 1), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(filepath.Join(bin, tc.name), append(tc.args, "-config", cfg)...)
			var logs testenv.Buffer
			cmd.Stdout, cmd.Stderr = &logs, &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(logs.String(), tc.up) {
				select {
				case err := <-done:
					t.Fatalf("exited before it was up: %v\n%s", err, logs.String())
				default:
				}
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					t.Fatalf("not up within 30s:\n%s", logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !strings.Contains(logs.String(), `"level":"info"`) {
				t.Fatalf("logs are not zerolog JSON:\n%s", logs.String())
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit: %v\n%s", err, logs.String())
				}
			case <-time.After(5 * time.Second): // liveness bound; it normally takes milliseconds
				_ = cmd.Process.Kill()
				t.Fatalf("still running 5s after SIGTERM\n%s", logs.String())
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
