package verifycli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

func TestRunWithArgsAndStdin(t *testing.T) {
	w, err := verifytest.NewWorld(verifytest.WorldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	o, err := w.EngineOptions()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	stdin := strings.NewReader("nobody.b@good.test\n\ninfo@good.test\n")
	if err := RunWith(context.Background(), o, "normal", false, []string{"ok.a@good.test", "-", "bad@"}, stdin, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []struct {
		reason verify.Reason
		passed bool
	}{{verify.ReasonValid, true}, {verify.ReasonInvalid, false}, {verify.ReasonNonexistent, false}, {verify.ReasonNonexistent, false}}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines: %s", len(lines), out.String())
	}
	for i, l := range lines {
		var got Line
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatal(err)
		}
		if got.Reason != want[i].reason || got.Passed != want[i].passed || got.Mode != "normal" {
			t.Errorf("line %d: %s", i, l)
		}
	}
}

func TestRunDefaultsAndLists(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AUTOFLOSS_CONFIG", filepath.Join(dir, "missing.yaml"))
	var out, errb bytes.Buffer
	// syntax-only check through the real command (no network: invalid address, no SMTP)
	if err := Run(context.Background(), []string{"-no-smtp", "-dns-servers", "127.0.0.1:1", "not-an-address"}, nil, &out, &errb); err != nil {
		t.Fatalf("%v %s", err, errb.String())
	}
	if !strings.Contains(out.String(), `"reason":"invalid"`) {
		t.Fatalf("%s", out.String())
	}
	src := filepath.Join(dir, "src.json")
	if err := os.WriteFile(src, []byte(`["Temp.example","temp2.example"]`), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := RunLists(context.Background(), []string{"update", "--kind", "disposable", "--from", src, "--dir", dir}, nil, &out, &errb); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "disposable.txt"))
	if err != nil || !strings.Contains(string(b), "temp.example\ntemp2.example\n") || !strings.Contains(string(b), "# source: "+src) {
		t.Fatalf("%s %v", b, err)
	}
	out.Reset()
	if err := RunLists(context.Background(), []string{"sizes", "--dir", dir}, nil, &out, &errb); err != nil || !strings.Contains(out.String(), "disposable\t2\n") {
		t.Fatalf("%v %s", err, out.String())
	}
	if err := RunLists(context.Background(), []string{"update", "--kind", "nope", "--from", src, "--dir", dir}, nil, &out, &errb); err == nil {
		t.Fatal("unknown kind accepted")
	}
}
