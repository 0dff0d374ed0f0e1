package verify

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseAddress: the parser never panics, and what it accepts respects the limits it promises.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"jane@example.com", "a@b.c", "@", "x@", "@y.z", "a..b@c.d", "ünï@bücher.de",
		"jane@xn--bcher-kva.de", strings.Repeat("a", 65) + "@x.com", "a@" + strings.Repeat("b.", 130) + "com",
		"\"quoted\"@x.com", "a@[127.0.0.1]", "a@b@c.com", " padded@x.com ", "a@-x.com", "a@x_.com", "\xff@x.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if a.Local == "" || len(a.Local) > 64 {
			t.Fatalf("accepted local part of %d octets", len(a.Local))
		}
		if a.Domain == "" || len(a.Domain) > 255 || !strings.Contains(a.Domain, ".") {
			t.Fatalf("accepted domain %q", a.Domain)
		}
		if len(a.String()) > 254 {
			t.Fatalf("accepted address of %d octets", len(a.String()))
		}
		if a.Domain != strings.ToLower(a.Domain) || !utf8.ValidString(a.Domain) {
			t.Fatalf("domain not normalised: %q", a.Domain)
		}
		// Parsing the normalised form again gives the same address.
		b, err := ParseAddress(a.String())
		if err != nil || b.String() != a.String() {
			t.Fatalf("normalised form %q does not round-trip: %v", a.String(), err)
		}
	})
}

// FuzzSuggestDomain: the suggester never panics, never suggests the input itself, and only ever suggests
// a well-formed domain.
func FuzzSuggestDomain(f *testing.F) {
	lists, err := EmbeddedLists()
	if err != nil {
		f.Fatal(err)
	}
	s := NewSuggester(lists.Popular(), nil)
	for _, d := range []string{"gmial.com", "gmail.cmo", "hotmial.com", "yaho.com", "outlok.com", "example.com",
		"", ".", "a.", ".com", "gmail..com", "xn--bcher-kva.de", "gmail.com.", "g"} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, d string) {
		d = strings.ToLower(d)
		got := s.SuggestDomain(d)
		if got == "" {
			return
		}
		if got == d {
			t.Fatalf("suggested the input itself: %q", d)
		}
		if _, err := ParseAddress("x@" + got); err != nil {
			t.Fatalf("suggested a malformed domain %q for %q: %v", got, d, err)
		}
	})
}
