package verify

import (
	"errors"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Address is a syntactically valid, normalised address.
type Address struct {
	Local   string // as written (case kept: local parts may be case-sensitive)
	Domain  string // lower-case A-label (punycode) form, no trailing dot
	Unicode string // the domain in U-label form, for display
}

// String is local@domain.
func (a Address) String() string { return a.Local + "@" + a.Domain }

// stringFrom is a.String(), reusing raw when it already reads so.
func (a Address) stringFrom(raw string) string {
	if n := len(a.Local); len(raw) == n+1+len(a.Domain) && raw[n] == '@' && raw[:n] == a.Local && raw[n+1:] == a.Domain {
		return raw
	}
	return a.String()
}

// Syntax errors; messages never contain the address.
var (
	ErrNoAt          = errors.New("no @")
	ErrLocalEmpty    = errors.New("empty local part")
	ErrLocalTooLong  = errors.New("local part longer than 64 octets")
	ErrLocalChars    = errors.New("local part has characters outside the practical RFC 5322 subset")
	ErrLocalDots     = errors.New("local part has a leading, trailing or doubled dot")
	ErrDomainEmpty   = errors.New("empty domain")
	ErrDomainTooLong = errors.New("domain longer than 255 octets")
	ErrDomainIDN     = errors.New("domain is not a valid IDN")
	ErrDomainLabel   = errors.New("domain label invalid")
	ErrDomainDotless = errors.New("domain has no dot")
	ErrTooLong       = errors.New("address longer than 254 octets")
)

var idnaProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.BidiRule(), idna.StrictDomainName(true))

// atext of RFC 5322 (plus '.', checked separately).
var atext = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-/=?^_`{|}~." {
		t[c] = true
	}
	return
}()

// ParseAddress checks an address against the practical subset of RFC
// 5321/5322 that mail systems accept: a dot-atom local part of printable ASCII
// (quoted local parts, comments and non-ASCII local parts are refused, as by
// nearly every sending platform), a domain of at least two LDH labels (IDN
// accepted and converted to punycode; address literals refused), local part ≤ 64,
// domain ≤ 255 and the whole address ≤ 254 octets (in A-label form).
func ParseAddress(s string) (Address, error) {
	s = strings.TrimSpace(s)
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Address{}, ErrNoAt
	}
	local, dom := s[:at], s[at+1:]
	if local == "" {
		return Address{}, ErrLocalEmpty
	}
	if len(local) > 64 {
		return Address{}, ErrLocalTooLong
	}
	for i := 0; i < len(local); i++ {
		if !atext[local[i]] {
			return Address{}, ErrLocalChars
		}
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return Address{}, ErrLocalDots
	}
	a, err := parseDomain(dom)
	if err != nil {
		return Address{}, err
	}
	if len(local)+1+len(a.Domain) > 254 {
		return Address{}, ErrTooLong
	}
	a.Local = local
	return a, nil
}

func parseDomain(dom string) (Address, error) {
	dom = strings.TrimSuffix(dom, ".")
	if dom == "" {
		return Address{}, ErrDomainEmpty
	}
	if len(dom) > 255 {
		return Address{}, ErrDomainTooLong
	}
	ascii := true
	for i := 0; i < len(dom); i++ {
		if dom[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii && !utf8.ValidString(dom) {
		return Address{}, ErrDomainIDN // invalid UTF-8 would be mapped to U+FFFD, a domain nobody wrote
	}
	var d string
	if ascii {
		d = strings.ToLower(dom)
		if err := checkLDH(d); err != nil {
			return Address{}, err
		}
		if strings.Contains(d, "xn--") {
			if _, err := idnaProfile.ToUnicode(d); err != nil {
				return Address{}, ErrDomainIDN
			}
		}
	} else {
		var err error
		d, err = idnaProfile.ToASCII(dom)
		if err != nil {
			return Address{}, ErrDomainIDN
		}
		d = strings.ToLower(d)
		if err := checkLDH(d); err != nil {
			return Address{}, err
		}
	}
	if len(d) > 255 {
		return Address{}, ErrDomainTooLong
	}
	u := d
	if strings.Contains(d, "xn--") {
		if x, err := idnaProfile.ToUnicode(d); err == nil {
			u = x
		}
	}
	return Address{Domain: d, Unicode: u}, nil
}

func checkLDH(d string) error {
	labels := 0
	start := 0
	for i := 0; i <= len(d); i++ {
		if i < len(d) && d[i] != '.' {
			c := d[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return ErrDomainLabel
			}
			continue
		}
		l := d[start:i]
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return ErrDomainLabel
		}
		labels++
		start = i + 1
	}
	if labels < 2 {
		return ErrDomainDotless
	}
	// the top-level label is never all-numeric (keeps 1.2.3.4 out)
	tld := d[strings.LastIndexByte(d, '.')+1:]
	allNum := true
	for i := 0; i < len(tld); i++ {
		if tld[i] < '0' || tld[i] > '9' {
			allNum = false
		}
	}
	if allNum {
		return ErrDomainLabel
	}
	return nil
}
