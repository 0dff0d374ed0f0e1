package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/autofloss/autofloss/verify"
)

func TestGatesAndPresets(t *testing.T) {
	g := Gates()
	if len(g) != 15 || g[0] != "invalid" || g[14] != "failed_exchange" {
		t.Fatalf("gates %v", g)
	}
	for i, r := range verify.GatedReasons() {
		if string(r) != g[i] {
			t.Fatalf("gate %d = %s, reason %s", i, g[i], r)
		}
	}
	n := Preset(PresetNormal)
	on := []string{}
	for _, x := range g {
		if n[x] {
			on = append(on, x)
		}
	}
	if got := strings.Join(on, ","); got != "invalid,illegitimate,nonexistent,deactivated,spam,banned,complainer,bounced,disposable" {
		t.Fatalf("normal preset: %s", got)
	}
	if len(n) != 15 {
		t.Fatal("preset must name every gate")
	}
	for _, x := range g {
		if !Preset(PresetAggressive)[x] {
			t.Fatalf("aggressive misses %s", x)
		}
	}
	if Preset(PresetCustom) != nil || Preset("x") != nil {
		t.Fatal("custom/unknown preset must be nil")
	}
	g[0] = "mutated"
	if Gates()[0] != "invalid" {
		t.Fatal("Gates must return a copy")
	}
	if err := ValidateChecks(map[string]bool{"role": true, "nope": false}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("ValidateChecks: %v", err)
	}
}

func TestWantedChecks(t *testing.T) {
	if c := WantedChecks(Settings{Aggressiveness: PresetAggressive}); c != verify.AllChecks {
		t.Fatalf("aggressive: %b", c)
	}
	c := WantedChecks(Settings{Aggressiveness: PresetNormal})
	if c.Has(verify.ReasonRole) || !c.Has(verify.ReasonNonexistent) || !c.WantsSMTP() {
		t.Fatalf("normal: %b", c)
	}
	c = WantedChecks(Settings{Aggressiveness: PresetCustom, Checks: map[string]bool{"role": true, "invalid": true}})
	if c != verify.ChecksOf(verify.ReasonRole, verify.ReasonInvalid) || c.WantsSMTP() || c.WantsDNS() {
		t.Fatalf("custom: %b", c)
	}
	// normal ignores a stale checks map
	if WantedChecks(Settings{Aggressiveness: PresetNormal, Checks: map[string]bool{"role": true}}).Has(verify.ReasonRole) {
		t.Fatal("normal must use the preset")
	}
}

func res(email string, r verify.Reason) verify.Result {
	return verify.Result{Email: email, Reason: r, Status: r.Status()}
}

func TestDecide(t *testing.T) {
	rules := CompileRules(
		[]Rule{{"vip", MatchLocalPart}, {"partner.example", MatchDomain}, {"Boss@Corp.example", MatchEmail}},
		[]Rule{{"test", MatchLocalPart}, {"spam.example", MatchDomain}, {"vip", MatchLocalPart}, {"x@corp.example", MatchEmail}},
	)
	normal := Settings{Aggressiveness: PresetNormal}
	aggr := Settings{Aggressiveness: PresetAggressive}
	custom := Settings{Aggressiveness: PresetCustom, Checks: map[string]bool{"role": true}}
	cases := []struct {
		name string
		r    verify.Result
		s    Settings
		want Decision
	}{
		{"valid", res("a@b.example", verify.ReasonValid), normal, Decision{Passed: true, Reason: "valid", Status: "passed"}},
		{"role normal passes", res("info@b.example", verify.ReasonRole), normal, Decision{Passed: true, Reason: "role", Status: "risky"}},
		{"role aggressive fails", res("info@b.example", verify.ReasonRole), aggr, Decision{Reason: "role", Status: "risky", WriteBack: true}},
		{"role custom fails", res("info@b.example", verify.ReasonRole), custom, Decision{Reason: "role", Status: "risky", WriteBack: true}},
		{"nonexistent custom passes", res("n@b.example", verify.ReasonNonexistent), custom, Decision{Passed: true, Reason: "nonexistent", Status: "undeliverable"}},
		{"nonexistent normal", res("n@b.example", verify.ReasonNonexistent), normal, Decision{Reason: "nonexistent", Status: "undeliverable", WriteBack: true}},
		{"accept_all normal", res("n@b.example", verify.ReasonAcceptAll), normal, Decision{Passed: true, Reason: "accept_all", Status: "unknown"}},
		{"blacklisted local", res("my.test.1@b.example", verify.ReasonValid), normal, Decision{Reason: "blacklisted", Status: "risky", WriteBack: true, Blacklisted: true}},
		{"blacklisted subdomain", res("a@mx.SPAM.example", verify.ReasonValid), normal, Decision{Reason: "blacklisted", Status: "risky", WriteBack: true, Blacklisted: true}},
		{"blacklist beats found reason", res("test@b.example", verify.ReasonInvalid), normal, Decision{Reason: "blacklisted", Status: "risky", WriteBack: true, Blacklisted: true}},
		{"blacklisted email", res("X@corp.example", verify.ReasonValid), normal, Decision{Reason: "blacklisted", Status: "risky", WriteBack: true, Blacklisted: true}},
		{"not blacklisted: other email", res("xx@corp.example", verify.ReasonValid), normal, Decision{Passed: true, Reason: "valid", Status: "passed"}},
		{"not blacklisted: lookalike domain", res("a@notspam.example", verify.ReasonValid), normal, Decision{Passed: true, Reason: "valid", Status: "passed"}},
		{"whitelist beats blacklist", res("VIP.test@b.example", verify.ReasonNonexistent), normal, Decision{Passed: true, Reason: "nonexistent", Status: "undeliverable", Whitelisted: true, Blacklisted: true}},
		{"whitelisted domain failing", res("a@x.partner.example", verify.ReasonDisposable), aggr, Decision{Passed: true, Reason: "disposable", Status: "risky", Whitelisted: true}},
		{"whitelisted email case", res("boss@corp.EXAMPLE", verify.ReasonRole), aggr, Decision{Passed: true, Reason: "role", Status: "risky", Whitelisted: true}},
		{"nil rules", res("a@b.example", verify.ReasonBanned), normal, Decision{Reason: "banned", Status: "risky", WriteBack: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rl := rules
			if c.name == "nil rules" {
				rl = nil
			}
			if got := Decide(c.r, c.s, rl); got != c.want {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestValidateRule(t *testing.T) {
	long := strings.Repeat("a", 254)
	cases := []struct {
		kw, on string
		want   Rule
		err    error
	}{
		{"  info ", "", Rule{"info", MatchLocalPart}, nil},
		{"Example.com", "domain", Rule{"Example.com", MatchDomain}, nil},
		{"a@b.c", "email", Rule{"a@b.c", MatchEmail}, nil},
		{long, "local_part", Rule{long, MatchLocalPart}, nil},
		{long + "a", "", Rule{}, ErrKeywordTooLong},
		{"   ", "", Rule{}, ErrKeywordEmpty},
		{"a b", "", Rule{}, ErrKeywordWhitespace},
		{"a\tb", "", Rule{}, ErrKeywordWhitespace},
		{"x", "subject", Rule{}, ErrMatchOn},
	}
	for _, c := range cases {
		got, err := ValidateRule(c.kw, c.on)
		if !errors.Is(err, c.err) || got != c.want {
			t.Errorf("ValidateRule(%q,%q) = %+v, %v; want %+v, %v", c.kw, c.on, got, err, c.want, c.err)
		}
	}
	if RuleKey(Rule{"INFO", MatchLocalPart}) != RuleKey(Rule{"info", MatchLocalPart}) ||
		RuleKey(Rule{"info", MatchLocalPart}) == RuleKey(Rule{"info", MatchDomain}) {
		t.Fatal("RuleKey")
	}
}

func TestRulesThousandsAgreeWithNaive(t *testing.T) {
	var black []Rule
	for i := 0; i < 3000; i++ {
		switch i % 3 {
		case 0:
			black = append(black, Rule{fmt.Sprintf("kw%dx", i), MatchLocalPart})
		case 1:
			black = append(black, Rule{fmt.Sprintf("d%d.example", i), MatchDomain})
		case 2:
			black = append(black, Rule{fmt.Sprintf("u%d@e.example", i), MatchEmail})
		}
	}
	r := CompileRules(nil, black)
	naive := func(email string) bool {
		e := strings.ToLower(email)
		at := strings.LastIndexByte(e, '@')
		local, dom := e[:at], e[at+1:]
		for _, b := range black {
			k := strings.ToLower(b.Keyword)
			switch b.MatchOn {
			case MatchLocalPart:
				if strings.Contains(local, k) {
					return true
				}
			case MatchDomain:
				if dom == k || strings.HasSuffix(dom, "."+k) {
					return true
				}
			case MatchEmail:
				if e == k {
					return true
				}
			}
		}
		return false
	}
	for i := 0; i < 3000; i++ {
		for _, e := range []string{
			fmt.Sprintf("ab.KW%dX.z@x.example", i), fmt.Sprintf("a@sub.d%d.example", i), fmt.Sprintf("a@xd%d.example", i),
			fmt.Sprintf("u%d@e.example", i), fmt.Sprintf("u%d@e.example.org", i),
		} {
			_, got := r.Match(e)
			if got != naive(e) {
				t.Fatalf("%s: got %v want %v", e, got, naive(e))
			}
		}
	}
}

func BenchmarkRulesMatch1000(b *testing.B) {
	var white, black []Rule
	for i := 0; i < 1000; i++ {
		on := []MatchOn{MatchLocalPart, MatchDomain, MatchEmail}[i%3]
		kw := fmt.Sprintf("keyword%d", i)
		if on == MatchDomain {
			kw += ".example"
		}
		if on == MatchEmail {
			kw += "@x.example"
		}
		if i%2 == 0 {
			white = append(white, Rule{kw, on})
		} else {
			black = append(black, Rule{kw, on})
		}
	}
	r := CompileRules(white, black)
	addrs := []string{"jane.doe@mail.example.com", "keyword17.sales@corp.example", "x@sub.keyword4.example", "keyword2@x.example"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Match(addrs[i&3])
	}
}

func BenchmarkDecide(b *testing.B) {
	r := CompileRules([]Rule{{"vip", MatchLocalPart}}, []Rule{{"test", MatchLocalPart}})
	s := Settings{Aggressiveness: PresetNormal}
	res := verify.Result{Email: "jane@example.com", Reason: verify.ReasonRole, Status: verify.StatusRisky}
	for i := 0; i < b.N; i++ {
		Decide(res, s, r)
	}
}
