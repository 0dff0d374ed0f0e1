package esptest

// Seed data: the deterministic address material fakes are seeded from. Everything here can be replaced per
// fake through Seed.Domains, so a test DNS world (miekg/dns on loopback) can serve exactly these domains.
//
// Address shapes (i is the contact's index, which makes every address unique):
//   good, unsubscribed, bounced, complained: <first>.<last>.<i>@<Good[…]>
//   typo:        <first>.<last>.<i>@<Typo[…]>            (a misspelt big provider)
//   disposable:  <first><i>@<Disposable[…]>
//   role:        <Role[…]>@dept<i>.<Good[…]>               (a role local part on a subdomain of a good domain:
//                                                          serve the good domains' wildcard in the DNS world)
//   bad_domain:  <first>.<last>.<i>@<Bad[…]>               (under .invalid: never resolves)

// Domains is the address material of a seed.
type Domains struct {
	Good       []string // domains a test DNS world serves (MX + an SMTP server that accepts)
	Typo       []string // misspellings of big providers
	Disposable []string // disposable-address providers
	Role       []string // role local parts
	Bad        []string // domains that never resolve
	First      []string
	Last       []string
}

// DefaultDomains returns the default address material (a fresh copy each call).
func DefaultDomains() Domains {
	return Domains{
		Good:       []string{"acme-mail.test", "northwind.test", "contoso-post.test", "fabrikam.test", "globex.test"},
		Typo:       []string{"gmial.com", "gmal.com", "yaho.com", "hotmial.com", "outlok.com", "gnail.com"},
		Disposable: []string{"mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com", "trashmail.com"},
		Role:       []string{"info", "admin", "sales", "support", "contact", "office", "billing", "webmaster", "postmaster", "noreply"},
		Bad:        []string{"no-such-host.invalid", "unregistered-domain.invalid", "nowhere.invalid"},
		First:      []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara"},
		Last:       []string{"smith", "jones", "brown", "taylor", "wilson", "davies", "evans", "thomas", "johnson", "roberts", "walker", "wright", "robinson", "thompson", "white", "hughes"},
	}
}
