package policy

import (
	"strings"
	"testing"
)

// FuzzRules: compiling and matching arbitrary keywords and addresses never panics, and every valid rule
// matches the address it was built from (case-insensitively), on the list it was added to.
func FuzzRules(f *testing.F) {
	f.Add("info", "local_part", "Info@Example.com")
	f.Add("example.com", "domain", "jane@mail.example.com")
	f.Add("jane@example.com", "email", "JANE@example.com")
	f.Add("", "local_part", "@")
	f.Add("ß", "local_part", "straße@x.de")
	f.Add("a", "bogus", "a@b")
	f.Fuzz(func(t *testing.T, keyword, matchOn, email string) {
		r, err := ValidateRule(keyword, matchOn)
		rules := CompileRules([]Rule{{Keyword: keyword, MatchOn: MatchOn(matchOn)}}, nil)
		_, _ = rules.Match(email)
		if err != nil {
			return
		}
		k := strings.ToLower(r.Keyword)
		var addr string
		switch r.MatchOn {
		case MatchLocalPart:
			if strings.Contains(k, "@") {
				return
			}
			addr = "x" + r.Keyword + "y@example.com"
		case MatchDomain:
			if strings.Contains(k, "@") {
				return
			}
			addr = "someone@" + strings.ToUpper(r.Keyword)
		case MatchEmail:
			addr = strings.ToUpper(r.Keyword)
		}
		if strings.ToLower(strings.ToUpper(r.Keyword)) != k {
			return // case folding that does not round-trip (ß, ı, invalid UTF-8): matching is defined on ToLower
		}
		white, black := CompileRules(nil, []Rule{r}).Match(addr)
		if white || !black {
			t.Fatalf("rule %+v: Match(%q) = white %v, black %v; want black only", r, addr, white, black)
		}
	})
}
