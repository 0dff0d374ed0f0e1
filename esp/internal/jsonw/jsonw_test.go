package jsonw

import (
	"encoding/json"
	"testing"
)

func TestStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "<a href='x'>&amp;</a>", "tab\tnl\nret\rbs\bff\f", "\x00\x01\x1f\x7f",
		"héllo wörld ✓ 𝄞", "bad \xff utf8 \xc3", "line\u2028para\u2029", "mf_failed - mailbox_does_not_exist",
		"someone+tag@example.com",
	} {
		want, _ := json.Marshal(s)
		if got := String(nil, s); string(got) != string(want) {
			t.Errorf("String(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestStringMapMatchesEncodingJSON(t *testing.T) {
	for _, m := range []map[string]string{
		nil, {}, {"A": "1"}, {"MF_REASON": "disposable", "MF_PASSED": "false", "MF_MODE": "normal", "Z<": "&"},
	} {
		want, _ := json.Marshal(m)
		if m == nil {
			want = []byte("{}") // StringMap writes an empty object for nil (callers never pass nil as null)
		}
		if got := StringMap(nil, m); string(got) != string(want) {
			t.Errorf("StringMap(%v) = %s, want %s", m, got, want)
		}
	}
}

func FuzzString(f *testing.F) {
	f.Add("a\"b<\xff\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := String(nil, s); string(got) != string(want) {
			t.Fatalf("String(%q) = %s, want %s", s, got, want)
		}
	})
}
