package verify

import "testing"

func TestSuggestExamples(t *testing.T) {
	l, err := EmbeddedLists()
	if err != nil {
		t.Fatal(err)
	}
	s := NewSuggester(l.Popular(), nil)
	for _, c := range []struct{ in, want string }{
		{"gmial.cmo", "gmail.com"}, {"gmial.com", "gmail.com"}, {"gmail.com", ""}, {"gmai.com", "gmail.com"},
		{"hotmial.com", "hotmail.com"}, {"yahooo.com", "yahoo.com"}, {"yaho.com", "yahoo.com"},
		{"gmailcom", "gmail.com"}, {"acme.cmo", "acme.com"}, {"acme.com", ""}, {"aol.cm", "aol.com"},
		{"outlok.com", "outlook.com"}, {"icloud.co", "icloud.com"}, {"max.com", ""}, {"gnail.com", "gmail.com"},
		{"yahoo.co", "yahoo.com"}, {"hotmail.co", "hotmail.com"},
	} {
		if got := s.SuggestDomain(c.in); got != c.want {
			t.Errorf("%s → %q, want %q", c.in, got, c.want)
		}
	}
}
