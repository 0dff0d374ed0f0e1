package verify

import (
	"math/rand"
	"strings"
	"testing"
)

// TestSanitizeRcptSameAsSanitizeText: the allocation-light path gives what
// sanitizeText(text, address, local) gives.
func TestSanitizeRcptSameAsSanitizeText(t *testing.T) {
	long := strings.Repeat("x", 190) + " <ok.bob@b001.test> tail"
	for _, tc := range []struct{ text, local, domain string }{
		{"2.0.0 I'll make sure <ok.bob@b001.test> gets this", "ok.bob", "b001.test"},
		{"2.0.0 I'll make sure <OK.Bob@B001.TEST> gets this", "ok.bob", "b001.test"},
		{"5.1.1 No such user here", "nobody.x", "b001.test"},
		{"5.1.1 <Jane@x.test>: unknown, jane is gone, JANE", "jane", "x.test"},
		{"line one\nline two jane@x.test", "jane", "x.test"},
		{"5.1.1 address address@x.test unknown", "address", "x.test"},
		{"ss ss@x.test <ss@x.test>", "ss", "x.test"},
		{"a@x.testa@x.test", "a", "x.test"},
		{long, "ok.bob", "b001.test"},
		{strings.Repeat("y", 300), "ok.bob", "b001.test"},
		{"Benutzer jürgen@bücher.test unbekannt", "jürgen", "bücher.test"},
		{"user JÜRGEN unknown", "jürgen", "x.test"},
		{"", "a", "b.test"},
	} {
		want := sanitizeText(tc.text, tc.local+"@"+tc.domain, tc.local)
		if got := sanitizeRcpt(tc.text, tc.local, tc.domain); got != want {
			t.Errorf("%q %q %q: got %q want %q", tc.text, tc.local, tc.domain, got, want)
		}
		if got := sanitizeRcpt([]byte(tc.text), tc.local, tc.domain); got != want {
			t.Errorf("bytes %q %q %q: got %q want %q", tc.text, tc.local, tc.domain, got, want)
		}
	}
}

func TestSanitizeRcptRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	alpha := "abAB.@-x <>\n"
	word := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteByte(alpha[rng.Intn(len(alpha))])
		}
		return b.String()
	}
	for i := 0; i < 20000; i++ {
		local, domain := word(1+rng.Intn(3)), word(1+rng.Intn(3))
		text := word(rng.Intn(40))
		if rng.Intn(2) == 0 {
			text += local + "@" + domain + word(rng.Intn(5))
		}
		if rng.Intn(50) == 0 {
			text = strings.Repeat(text+local, 20)
		}
		want := sanitizeText(text, local+"@"+domain, local)
		if got := sanitizeRcpt(text, local, domain); got != want {
			t.Fatalf("%q %q %q: got %q want %q", text, local, domain, got, want)
		}
		if got := sanitizeRcpt([]byte(text), local, domain); got != want {
			t.Fatalf("bytes %q %q %q: got %q want %q", text, local, domain, got, want)
		}
	}
}
