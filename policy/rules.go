package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/autofloss/autofloss/verify/match"
)

// MatchOn says which part of an address a keyword rule looks at.
type MatchOn string

// The three match_on values of api.md.
const (
	MatchLocalPart MatchOn = "local_part" // the keyword occurs anywhere in the part before @ (default)
	MatchDomain    MatchOn = "domain"     // the domain equals the keyword or is a subdomain of it
	MatchEmail     MatchOn = "email"      // the whole address equals the keyword
)

// Keyword rule lists.
const (
	ListWhitelist = "whitelist"
	ListBlacklist = "blacklist"
)

// Rule is one keyword rule.
type Rule struct {
	Keyword string  `json:"keyword"`
	MatchOn MatchOn `json:"match_on"`
}

// Validation errors (wrapped with the offending field by ValidateRule).
var (
	ErrKeywordEmpty      = errors.New("keyword is empty")
	ErrKeywordTooLong    = errors.New("keyword is longer than 254 characters")
	ErrKeywordWhitespace = errors.New("keyword contains whitespace")
	ErrMatchOn           = errors.New("match_on must be local_part, domain or email")
)

// NormalizeKeyword trims the keyword and checks it: 1–254 characters (runes)
// after trimming, no whitespace inside. The returned keyword keeps its case
// (matching is case-insensitive; lists de-duplicate on the lower-cased form,
// see RuleKey).
func NormalizeKeyword(k string) (string, error) {
	k = strings.TrimSpace(k)
	n := 0
	for _, r := range k {
		if unicode.IsSpace(r) {
			return "", ErrKeywordWhitespace
		}
		n++
	}
	if n == 0 {
		return "", ErrKeywordEmpty
	}
	if n > 254 {
		return "", ErrKeywordTooLong
	}
	return k, nil
}

// ParseMatchOn validates match_on; "" means the default local_part.
func ParseMatchOn(s string) (MatchOn, error) {
	switch MatchOn(s) {
	case "":
		return MatchLocalPart, nil
	case MatchLocalPart, MatchDomain, MatchEmail:
		return MatchOn(s), nil
	}
	return "", ErrMatchOn
}

// ValidateRule normalises and checks a rule from a client. Errors name the field.
func ValidateRule(keyword, matchOn string) (Rule, error) {
	k, err := NormalizeKeyword(keyword)
	if err != nil {
		return Rule{}, fmt.Errorf("keyword: %w", err)
	}
	m, err := ParseMatchOn(matchOn)
	if err != nil {
		return Rule{}, fmt.Errorf("match_on: %w", err)
	}
	// A domain keyword is matched without a leading @ and a trailing dot: "." or "@" alone would be a rule
	// that matches nothing (found by FuzzRules).
	if m == MatchDomain && strings.TrimPrefix(strings.TrimSuffix(k, "."), "@") == "" {
		return Rule{}, fmt.Errorf("keyword: %w", ErrKeywordEmpty)
	}
	return Rule{Keyword: k, MatchOn: m}, nil
}

// RuleKey is the identity of a rule within one list: adding a rule with the
// same key returns the existing one.
func RuleKey(r Rule) string { return string(r.MatchOn) + "\x00" + normalizeKeyword(r.Keyword) }

// Rules is a compiled pair of keyword lists for one connection. Lookups cost
// O(address length) whatever the number of rules: domain and email rules are
// map lookups (the domain and each parent domain), local_part rules one
// Aho-Corasick pass. A nil *Rules matches nothing. Safe for concurrent use.
type Rules struct {
	white, black ruleSet
}

type ruleSet struct {
	domains map[string]struct{}
	emails  map[string]struct{}
	local   *match.Matcher
}

// CompileRules builds Rules from the whitelist and blacklist. Rules are
// expected to be valid (ValidateRule); invalid ones are skipped.
func CompileRules(whitelist, blacklist []Rule) *Rules {
	return &Rules{white: compileSet(whitelist), black: compileSet(blacklist)}
}

func compileSet(rs []Rule) ruleSet {
	s := ruleSet{domains: map[string]struct{}{}, emails: map[string]struct{}{}}
	var locals []string
	for _, r := range rs {
		k := normalizeKeyword(r.Keyword)
		if k == "" {
			continue
		}
		switch r.MatchOn {
		case MatchDomain:
			s.domains[strings.TrimPrefix(strings.TrimSuffix(k, "."), "@")] = struct{}{}
		case MatchEmail:
			s.emails[k] = struct{}{}
		case MatchLocalPart, "":
			locals = append(locals, k)
		}
	}
	if len(locals) > 0 {
		s.local = match.New(locals)
	}
	return s
}

func (s *ruleSet) match(email, local, domain string) bool {
	if len(s.emails) > 0 {
		if _, ok := s.emails[email]; ok {
			return true
		}
	}
	if len(s.domains) > 0 && domain != "" {
		d := domain
		for {
			if _, ok := s.domains[d]; ok {
				return true
			}
			i := strings.IndexByte(d, '.')
			if i < 0 {
				break
			}
			d = d[i+1:]
		}
	}
	return s.local != nil && s.local.Contains(local)
}

// Match reports whether the address is whitelisted and/or blacklisted.
// Matching is case-insensitive; the local part is what precedes the last @.
func (r *Rules) Match(email string) (whitelisted, blacklisted bool) {
	if r == nil {
		return false, false
	}
	e := strings.ToLower(strings.TrimSpace(email))
	local, domain := e, ""
	if i := strings.LastIndexByte(e, '@'); i >= 0 {
		local, domain = e[:i], strings.TrimSuffix(e[i+1:], ".")
	}
	return r.white.match(e, local, domain), r.black.match(e, local, domain)
}
