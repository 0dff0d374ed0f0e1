package verify

import (
	"fmt"
	"strings"
)

// ProviderRules say which mailbox providers are never probed over SMTP and
// what their addresses get instead (valid or accept_all). Data, not code:
// shipped in data/providers.txt.
type ProviderRules struct {
	domains map[string]Reason
	mx      map[string]Reason
}

// ProviderRule is one parsed rule.
type ProviderRule struct {
	Kind    string // "domain" or "mx"
	Name    string
	Verdict Reason // ReasonValid or ReasonAcceptAll
}

// ParseProviderRules parses lines "<domain|mx> <name> <valid|accept_all>".
func ParseProviderRules(lines []string) (*ProviderRules, error) {
	p := &ProviderRules{domains: map[string]Reason{}, mx: map[string]Reason{}}
	for _, ln := range lines {
		f := strings.Fields(ln)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("provider rule %q: want <domain|mx> <name> <valid|accept_all>", ln)
		}
		v := Reason(f[2])
		if v != ReasonValid && v != ReasonAcceptAll {
			return nil, fmt.Errorf("provider rule %q: verdict must be valid or accept_all", ln)
		}
		name := strings.ToLower(strings.TrimSuffix(f[1], "."))
		switch f[0] {
		case "domain":
			p.domains[name] = v
		case "mx":
			p.mx[name] = v
		default:
			return nil, fmt.Errorf("provider rule %q: kind must be domain or mx", ln)
		}
	}
	return p, nil
}

// NewProviderRules builds rules from parsed values.
func NewProviderRules(rules ...ProviderRule) *ProviderRules {
	p := &ProviderRules{domains: map[string]Reason{}, mx: map[string]Reason{}}
	for _, r := range rules {
		if r.Kind == "mx" {
			p.mx[strings.ToLower(r.Name)] = r.Verdict
		} else {
			p.domains[strings.ToLower(r.Name)] = r.Verdict
		}
	}
	return p
}

// ForDomain returns the verdict for a domain that must not be probed.
func (p *ProviderRules) ForDomain(domain string) (Reason, bool) {
	if p == nil {
		return "", false
	}
	v, ok := p.domains[domain]
	return v, ok
}

// ForMX returns the verdict when an MX host belongs to a provider that must not be probed.
func (p *ProviderRules) ForMX(host string) (Reason, string, bool) {
	if p == nil || len(p.mx) == 0 {
		return "", "", false
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for {
		if v, ok := p.mx[h]; ok {
			return v, h, true
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			return "", "", false
		}
		h = h[i+1:]
	}
}
