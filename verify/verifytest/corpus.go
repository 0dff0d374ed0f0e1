package verifytest

import (
	"fmt"

	"github.com/autofloss/autofloss/verify"
)

// Labelled is one corpus entry: an input and the reason the engine must give
// when every check is wanted (verify.AllChecks, the aggressive preset).
type Labelled struct {
	Input verify.Input
	Want  verify.Reason
	Kind  string // the case it exercises
}

type corpusCase struct {
	kind   string
	want   verify.Reason
	status string
	make   func(i int) string
}

var first = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar", "peggy", "trent", "victor", "walter"}

func person(i int) string { return fmt.Sprintf("%s.%d", first[i%len(first)], i) }

var corpusCases = []corpusCase{
	{"valid", verify.ReasonValid, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainGood }},
	{"valid-upper", verify.ReasonValid, "", func(i int) string { return "OK." + person(i) + "@GOOD.test" }},
	{"nonexistent", verify.ReasonNonexistent, "", func(i int) string { return MailboxUnknown + person(i) + "@" + DomainGood }},
	{"unknown-plain", verify.ReasonNonexistent, "", func(i int) string { return person(i) + "@" + DomainGood }},
	{"inbox_full-552", verify.ReasonInboxFull, "", func(i int) string { return MailboxFull + person(i) + "@" + DomainGood }},
	{"inbox_full-452", verify.ReasonInboxFull, "", func(i int) string { return MailboxQuota452 + person(i) + "@" + DomainGood }},
	{"deactivated", verify.ReasonDeactivated, "", func(i int) string { return MailboxDisabled + person(i) + "@" + DomainGood }},
	{"accept_all", verify.ReasonAcceptAll, "", func(i int) string { return person(i) + "@" + DomainCatchAll }},
	{"greylisted", verify.ReasonUnverified, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainGrey }},
	{"hang", verify.ReasonFailedExchange, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainHang }},
	{"refused", verify.ReasonFailedExchange, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainRefused }},
	{"backup-valid", verify.ReasonValid, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainBackup }},
	{"backup-nonexistent", verify.ReasonNonexistent, "", func(i int) string { return MailboxUnknown + person(i) + "@" + DomainBackup }},
	{"null-mx", verify.ReasonIllegitimate, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainNullMX }},
	{"nxdomain", verify.ReasonIllegitimate, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainNXDomain }},
	{"no-mx-no-a", verify.ReasonIllegitimate, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainNoMail }},
	{"servfail", verify.ReasonUnverified, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainServfail }},
	{"a-only-valid", verify.ReasonValid, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainAOnly }},
	{"a-only-nonexistent", verify.ReasonNonexistent, "", func(i int) string { return MailboxUnknown + person(i) + "@" + DomainAOnly }},
	{"parked-ns", verify.ReasonAvailable, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainParked }},
	{"parked-mx", verify.ReasonAvailable, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainParkedMX }},
	{"spam-trap", verify.ReasonSpam, "", func(i int) string { return MailboxOK + person(i) + "@" + DomainTrap }},
	{"spam-trap-sub", verify.ReasonSpam, "", func(i int) string { return MailboxOK + person(i) + "@mail." + DomainTrap }},
	{"role", verify.ReasonRole, "", func(i int) string {
		return []string{"info", "sales", "admin", "support", "Postmaster", "noreply", "billing+x"}[i%7] + "@" + DomainGood
	}},
	{"banned", verify.ReasonBanned, "", func(i int) string {
		return []string{"ok.shit.happens", "ok.fuckyou", "ok.bitch-", "ok.x.porn"}[i%4] + fmt.Sprint(i) + "@" + DomainGood
	}},
	{"not-banned-scunthorpe", verify.ReasonValid, "", func(i int) string {
		return []string{"ok.classic", "ok.assessment", "ok.cocktail", "ok.dickens"}[i%4] + fmt.Sprint(i) + "@" + DomainGood
	}},
	{"complainer", verify.ReasonComplainer, verify.PlatformComplained, func(i int) string { return MailboxOK + person(i) + "@" + DomainGood }},
	{"bounced", verify.ReasonBounced, verify.PlatformBounced, func(i int) string { return MailboxOK + person(i) + "@" + DomainGood }},
	{"disposable", verify.ReasonDisposable, "", func(i int) string {
		return person(i) + "@" + []string{DomainDisposable, "guerrillamail.com", "10minutemail.com", "yopmail.com"}[i%4]
	}},
	{"invalid", verify.ReasonInvalid, "", func(i int) string {
		return []string{person(i), person(i) + "@", "@" + DomainGood, person(i) + "@@" + DomainGood, person(i) + "..x@" + DomainGood,
			"." + person(i) + "@" + DomainGood, person(i) + "@good", person(i) + "@-bad.test", person(i) + "@bad_.test",
			person(i) + " x@" + DomainGood, fmt.Sprintf("%065d@%s", i, DomainGood), person(i) + "@1.2.3.4"}[i%12]
	}},
	{"provider-valid", verify.ReasonValid, "", func(i int) string { return person(i) + "@gmail.com" }},
	{"provider-accept_all", verify.ReasonAcceptAll, "", func(i int) string { return person(i) + "@yahoo.com" }},
	{"idn-nxdomain", verify.ReasonIllegitimate, "", func(i int) string { return MailboxOK + person(i) + "@bücher.test" }},
	{"bulk-valid", verify.ReasonValid, "", func(i int) string { return MailboxOK + person(i) + "@" + BulkDomain(i%200) }},
	{"bulk-nonexistent", verify.ReasonNonexistent, "", func(i int) string { return MailboxUnknown + person(i) + "@" + BulkDomain(i%200) }},
	{"shared-valid", verify.ReasonValid, "", func(i int) string { return MailboxOK + person(i) + "@" + SharedDomain(i) }},
	{"shared-full", verify.ReasonInboxFull, "", func(i int) string { return MailboxFull + person(i) + "@" + SharedDomain(i) }},
}

// Corpus returns n labelled addresses over the world (deterministic), cycling
// through every case; labels hold for verify.AllChecks.
func Corpus(n int) []Labelled {
	out := make([]Labelled, 0, n)
	for i := 0; len(out) < n; i++ {
		c := corpusCases[i%len(corpusCases)]
		out = append(out, Labelled{Input: verify.Input{Email: c.make(i), PlatformStatus: c.status}, Want: c.want, Kind: c.kind})
	}
	return out
}

// SlowCase is an address whose domain answers slower than the engine's DNS
// timeout: it must come out unverified. Kept out of Corpus so the corpus runs fast.
func SlowCase() Labelled {
	return Labelled{Input: verify.Input{Email: MailboxOK + "slow@" + DomainSlow}, Want: verify.ReasonUnverified, Kind: "dns-slow"}
}

// BulkAddresses returns n addresses over the 200 bulk domains (valid and
// unknown users mixed), for benchmarks.
func BulkAddresses(n int) []verify.Input {
	out := make([]verify.Input, n)
	for i := range out {
		p := MailboxOK
		if i%5 == 4 {
			p = MailboxUnknown
		}
		out[i] = verify.Input{Email: fmt.Sprintf("%s%s@%s", p, person(i), BulkDomain(i%200))}
	}
	return out
}
