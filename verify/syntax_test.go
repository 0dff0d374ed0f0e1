package verify

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	l63 := strings.Repeat("a", 63)
	cases := []struct {
		in, want string
		err      error
	}{
		{"Jane.Doe@Example.COM", "Jane.Doe@example.com", nil},
		{"  jane@example.com. ", "jane@example.com", nil},
		{"o'hara+tag@sub.example.co.uk", "o'hara+tag@sub.example.co.uk", nil},
		{"x@bücher.de", "x@xn--bcher-kva.de", nil},
		{"x@XN--BCHER-KVA.de", "x@xn--bcher-kva.de", nil},
		{"x@münchen.DE", "x@xn--mnchen-3ya.de", nil},
		{"a!#$%&'*+/=?^_`{|}~-@example.com", "a!#$%&'*+/=?^_`{|}~-@example.com", nil},
		{strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com", nil},
		{strings.Repeat("a", 65) + "@example.com", "", ErrLocalTooLong},
		{"a@" + l63 + "." + l63 + "." + l63 + "." + strings.Repeat("b", 57) + ".com", "", ErrTooLong},
		{"a@" + strings.Repeat("a", 64) + ".com", "", ErrDomainLabel},
		{"plain", "", ErrNoAt},
		{"@example.com", "", ErrLocalEmpty},
		{"a@", "", ErrDomainEmpty},
		{"a b@example.com", "", ErrLocalChars},
		{"\"quoted\"@example.com", "", ErrLocalChars},
		{"josé@example.com", "", ErrLocalChars},
		{".a@example.com", "", ErrLocalDots},
		{"a.@example.com", "", ErrLocalDots},
		{"a..b@example.com", "", ErrLocalDots},
		{"a@localhost", "", ErrDomainDotless},
		{"a@-x.com", "", ErrDomainLabel},
		{"a@x-.com", "", ErrDomainLabel},
		{"a@x..com", "", ErrDomainLabel},
		{"a@x_y.com", "", ErrDomainLabel},
		{"a@1.2.3.4", "", ErrDomainLabel},
		{"a@[1.2.3.4]", "", ErrDomainLabel},
		{"a@@example.com", "", ErrLocalChars},
		{"a@xn--zz.com", "", ErrDomainIDN},
	}
	for _, c := range cases {
		a, err := ParseAddress(c.in)
		if !errors.Is(err, c.err) {
			t.Errorf("ParseAddress(%q) error %v, want %v", c.in, err, c.err)
			continue
		}
		if err == nil && a.String() != c.want {
			t.Errorf("ParseAddress(%q) = %q, want %q", c.in, a.String(), c.want)
		}
	}
}

func TestClassifyRCPT(t *testing.T) {
	cases := []struct {
		code int
		text string
		want Reason
	}{
		{250, "OK", ReasonValid},
		{251, "User not local; will forward", ReasonValid},
		{550, "5.1.1 No such user here", ReasonNonexistent},
		{551, "User not local", ReasonNonexistent},
		{553, "Mailbox name not allowed", ReasonNonexistent},
		{554, "5.1.1 recipient unknown", ReasonNonexistent},
		{552, "5.2.2 Mailbox full", ReasonInboxFull},
		{452, "4.2.2 Mailbox over quota", ReasonInboxFull},
		{452, "4.5.3 Too many recipients", ReasonUnverified},
		{550, "5.2.1 Mailbox disabled, not accepting messages", ReasonDeactivated},
		{550, "Account inactive", ReasonDeactivated},
		{451, "4.7.1 Greylisted, try again later", ReasonUnverified},
		{421, "Service not available", ReasonUnverified},
		{550, "5.7.1 Service unavailable; client host blocked using Spamhaus", ReasonUnverified},
		{554, "Transaction failed", ReasonUnverified},
	}
	for _, c := range cases {
		if got := ClassifyRCPT(c.code, c.text); got != c.want {
			t.Errorf("%d %q → %s, want %s", c.code, c.text, got, c.want)
		}
	}
}

func TestReasonTable(t *testing.T) {
	rs := Reasons()
	if len(rs) != 17 || rs[0] != ReasonValid || rs[len(rs)-1] != ReasonFailedExchange {
		t.Fatalf("%v", rs)
	}
	want := map[Reason]Status{ReasonValid: StatusPassed, ReasonInvalid: StatusUndeliverable, ReasonDeactivated: StatusUndeliverable,
		ReasonSpam: StatusRisky, ReasonBlacklisted: StatusRisky, ReasonDisposable: StatusRisky, ReasonAcceptAll: StatusUnknown,
		ReasonUnverified: StatusUnknown, ReasonFailedExchange: StatusUnknown}
	for r, s := range want {
		if r.Status() != s {
			t.Errorf("%s: %s want %s", r, r.Status(), s)
		}
	}
	if !ReasonInvalid.Precedes(ReasonRole) || ReasonRole.Precedes(ReasonInvalid) || ReasonValid.Precedes(ReasonRole) || !ReasonRole.Precedes(ReasonValid) {
		t.Fatal("precedence")
	}
	if len(GatedReasons()) != 15 || AllChecks.Has(ReasonBlacklisted) || AllChecks.Has(ReasonValid) {
		t.Fatal("gated reasons")
	}
}

func TestListsLoaded(t *testing.T) {
	l, err := EmbeddedLists()
	if err != nil {
		t.Fatal(err)
	}
	if n := l.Size(ListDisposable); n < 100_000 {
		t.Fatalf("disposable list has %d entries, want ≥ 100,000", n)
	}
	if n := l.Size(ListFree); n < 10_000 {
		t.Fatalf("free list has %d entries", n)
	}
	checks := []struct {
		name string
		got  bool
		want bool
	}{
		{"mailinator disposable", l.IsDisposable("mailinator.com"), true},
		{"sub of disposable", l.IsDisposable("x.mailinator.com"), true},
		{"gmail not disposable", l.IsDisposable("gmail.com"), false},
		{"gmail free", l.IsFree("gmail.com"), true},
		{"acme not free", l.IsFree("acme-corp-example.com"), false},
		{"role info", l.IsRole("info"), true},
		{"role Sales+x", l.IsRole("Sales+x"), true},
		{"not role", l.IsRole("jane.info"), false},
		{"banned token", l.HasBannedWord("big.shit"), true},
		{"banned substring", l.HasBannedWord("xxfuckingyy"), true},
		{"scunthorpe class", l.HasBannedWord("classic.assessment"), false},
		{"parking ns", l.IsParkingHost("NS1.SEDOPARKING.COM."), true},
		{"not parking", l.IsParkingHost("ns1.example.com"), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v", c.name, c.got)
		}
	}
	l2, err := l.With(ListSpamTrap, "trap.example", "Known@Victim.example")
	if err != nil {
		t.Fatal(err)
	}
	if !l2.IsSpamTrap("x", "a.trap.example") || !l2.IsSpamTrap("known", "victim.example") || l2.IsSpamTrap("other", "victim.example") || l.IsSpamTrap("x", "trap.example") {
		t.Fatal("With/IsSpamTrap")
	}
}

func TestListFiles(t *testing.T) {
	dir := t.TempDir()
	in := `["Foo.example", "bar.example", "foo.example", "bücher.example", "not a domain"]`
	entries, err := ParseList(ListDisposable, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(entries, ","); got != "bar.example,foo.example,xn--bcher-kva.example" {
		t.Fatalf("ParseList: %s", got)
	}
	lines, err := ParseList(ListRole, strings.NewReader("# c\nInfo\n\nsales\n"))
	if err != nil || strings.Join(lines, ",") != "info,sales" {
		t.Fatalf("lines: %v %v", lines, err)
	}
	if _, err := ParseList(ListProviders, strings.NewReader("domain x.example bogus\n")); err == nil {
		t.Fatal("bad provider rule accepted")
	}
	p, err := WriteListFile(dir, ListDisposable, entries, "test", testNow)
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadListFile(t.Context(), ListDisposable, p)
	if err != nil || strings.Join(back, ",") != strings.Join(entries, ",") {
		t.Fatalf("round trip: %v %v", back, err)
	}
	l, err := LoadLists(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Size(ListDisposable) != 3 || !l.IsDisposable("foo.example") || l.IsDisposable("mailinator.com") || l.Size(ListFree) < 10_000 {
		t.Fatal("LoadLists override")
	}
}

var testNow = mustTime("2026-06-02T09:00:00Z")

// TestCheckBitAndRankMatchTables: the switch forms agree with the tables.
func TestCheckBitAndRankMatchTables(t *testing.T) {
	for _, r := range append(Reasons(), "nonsense", "") {
		if got, want := checkBit(r), checkBits[r]; got != want {
			t.Errorf("checkBit(%q) = %b, table %b", r, got, want)
		}
		want := reasonRank[r]
		if got := rank(r); got != want {
			t.Errorf("rank(%q) = %d, table %d", r, got, want)
		}
	}
}
