package sandbox

import (
	"time"

	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

// GoodDomains are the domains the sandbox's good contacts live on: the world's mailbox domain, some bulk
// domains (an exchanger each) and some shared ones (one exchanger for all, like a hosted mail provider).
func GoodDomains() []string {
	d := []string{verifytest.DomainGood}
	for i := 0; i < 6; i++ {
		d = append(d, verifytest.BulkDomain(i))
	}
	for i := 0; i < 4; i++ {
		d = append(d, verifytest.SharedDomain(i))
	}
	return d
}

// Domains is the address material of the sandbox seed, aligned with the World so every kind of seeded
// contact comes out of the engine as that kind should:
//
//   - good, unsubscribed, bounced, complained: first names carry the world mailbox server's "ok." prefix
//     (ok.alice.smith.17@b003.test), so the mailbox exists: valid — then the platform status decides
//     (bounced and complained are risky; unsubscribed stays valid).
//   - typo: big-provider misspellings (gmail.con, yhaoo.com…) that the world does not know: illegitimate,
//     with the suggestion of the real provider.
//   - disposable: shipped disposable-list domains: disposable, found without any lookup.
//   - role: role local parts at dept<N>.<good domain>, which the World's DNS front routes to the catch-all
//     exchanger: role where the role check is wanted (aggressive); otherwise the catch-all check is not
//     wanted either (normal) and the accepting exchanger makes them valid.
//   - bad_domain: NXDOMAIN, null MX and no-mail domains of the world, and .invalid: illegitimate.
func Domains() esptest.Domains {
	d := esptest.DefaultDomains()
	d.Good = GoodDomains()
	// Misspellings the shipped lists do not already call disposable (many common ones, gmial.com or
	// hotmial.com, are listed as disposable typo-squatters): the world does not know them.
	d.Typo = []string{"gmail.con", "yhaoo.com", "hotnail.com", "outloook.com", "iclod.com", "yahoo.cm", "protonmial.com", "gmail.co"}
	d.Bad = []string{verifytest.DomainNXDomain, verifytest.DomainNullMX, verifytest.DomainNoMail, "no-such-host.invalid"}
	first := make([]string, len(d.First))
	for i, f := range d.First {
		first[i] = verifytest.MailboxOK + f
	}
	d.First = first
	return d
}

// SeedStart is the fixed creation time of the first seeded contact (contacts follow every 30 s).
var SeedStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// SeedOptions is the deterministic, World-aligned seed of n contacts (seed picks the draw; the sandbox uses
// one per platform). The pipeline's tests can seed any fake with it and check results with ExpectedReason.
func SeedOptions(n int, seed int64) esptest.Seed {
	d := Domains()
	return esptest.Seed{N: n, Seed: seed, Lists: 3, Domains: &d, Start: SeedStart}
}

// ExpectedReason is the engine's reason for a seeded contact of kind k over the sandbox World, with every
// check wanted (aggressive, verify.AllChecks) or with the normal preset's checks (policy.WantedChecks).
func ExpectedReason(k esptest.Kind, aggressive bool) verify.Reason {
	switch k {
	case esptest.KindGood, esptest.KindUnsubscribed:
		return verify.ReasonValid
	case esptest.KindTypo, esptest.KindBadDomain:
		return verify.ReasonIllegitimate
	case esptest.KindDisposable:
		return verify.ReasonDisposable
	case esptest.KindRole:
		if aggressive {
			return verify.ReasonRole
		}
		return verify.ReasonValid
	case esptest.KindBounced:
		return verify.ReasonBounced
	case esptest.KindComplained:
		return verify.ReasonComplainer
	}
	return ""
}
