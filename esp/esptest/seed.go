package esptest

import (
	"strconv"
	"strings"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Kind is what a seeded contact is meant to be, so tests can assert verdicts and statuses.
type Kind string

// The seeded kinds.
const (
	KindGood         Kind = "good"
	KindTypo         Kind = "typo"
	KindDisposable   Kind = "disposable"
	KindRole         Kind = "role"
	KindBadDomain    Kind = "bad_domain"
	KindUnsubscribed Kind = "unsubscribed" // a good address the platform reports unsubscribed
	KindBounced      Kind = "bounced"      // a good address the platform reports hard-bounced
	KindComplained   Kind = "complained"   // a good address the platform reports as a spam complainer
)

// Kinds lists every kind in the fixed order the mix is drawn in.
var Kinds = []Kind{KindGood, KindTypo, KindDisposable, KindRole, KindBadDomain, KindUnsubscribed, KindBounced, KindComplained}

// Mix is the relative weight of each kind (need not sum to 1).
type Mix map[Kind]float64

// DefaultMix: mostly good, a few of everything else.
func DefaultMix() Mix {
	return Mix{KindGood: 60, KindTypo: 7, KindDisposable: 7, KindRole: 7, KindBadDomain: 5, KindUnsubscribed: 6, KindBounced: 5, KindComplained: 3}
}

// Seed describes a fake's contacts. Contacts are a pure function of (Seed, index): nothing per contact is
// held until a test writes to it, so a fake of 1,000,000 contacts costs a few bytes per contact.
type Seed struct {
	N       int
	Mix     Mix      // nil: DefaultMix
	Seed    int64    // changes every draw
	Lists   int      // lists/audiences; 0: 3. About a quarter of contacts are in two lists.
	Domains *Domains // nil: DefaultDomains
	Start   time.Time
}

// SeedContact is one seeded contact before any write.
type SeedContact struct {
	Index   int
	Email   string
	Kind    Kind
	Status  esp.Status
	Lists   []int // list indexes, first is the primary one
	Created time.Time
	Updated time.Time
}

type seeder struct {
	s      Seed
	d      Domains
	cum    []float64
	kinds  []Kind
	total  float64
	lists  int
	start  time.Time
	salt   uint64
	domain string
}

func newSeeder(s Seed) *seeder {
	z := &seeder{s: s, lists: s.Lists, start: s.Start, salt: uint64(s.Seed)*0x9E3779B97F4A7C15 + 0x1234567}
	if z.lists <= 0 {
		z.lists = 3
	}
	if z.start.IsZero() {
		z.start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if s.Domains != nil {
		z.d = *s.Domains
	} else {
		z.d = DefaultDomains()
	}
	mix := s.Mix
	if mix == nil {
		mix = DefaultMix()
	}
	for _, k := range Kinds {
		if w := mix[k]; w > 0 {
			z.total += w
			z.cum = append(z.cum, z.total)
			z.kinds = append(z.kinds, k)
		}
	}
	if len(z.kinds) == 0 {
		z.kinds, z.cum, z.total = []Kind{KindGood}, []float64{1}, 1
	}
	return z
}

func mix64(x uint64) uint64 { // splitmix64
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

func pick(l []string, h uint64) string { return l[h%uint64(len(l))] }

// contact generates contact i.
func (z *seeder) contact(i int) SeedContact {
	h := mix64(z.salt ^ uint64(i))
	h2 := mix64(h)
	h3 := mix64(h2)
	u := float64(h>>11) / (1 << 53) * z.total
	kind := z.kinds[len(z.kinds)-1]
	for j, c := range z.cum {
		if u < c {
			kind = z.kinds[j]
			break
		}
	}
	d := &z.d
	first, last, n := pick(d.First, h2), pick(d.Last, h2>>16), strconv.Itoa(i)
	var email string
	switch kind {
	case KindTypo:
		email = first + "." + last + "." + n + "@" + pick(d.Typo, h3)
	case KindDisposable:
		email = first + n + "@" + pick(d.Disposable, h3)
	case KindRole:
		email = pick(d.Role, h3>>8) + "@dept" + n + "." + pick(d.Good, h3)
	case KindBadDomain:
		email = first + "." + last + "." + n + "@" + pick(d.Bad, h3)
	default:
		email = first + "." + last + "." + n + "@" + pick(d.Good, h3)
	}
	st := esp.StatusSubscribed
	switch kind {
	case KindUnsubscribed:
		st = esp.StatusUnsubscribed
	case KindBounced:
		st = esp.StatusBounced
	case KindComplained:
		st = esp.StatusComplained
	}
	primary := i % z.lists
	lists := []int{primary}
	if z.lists > 1 && (h3>>40)%4 == 0 {
		lists = append(lists, (primary+1)%z.lists)
	}
	created := z.start.Add(time.Duration(i) * 30 * time.Second)
	return SeedContact{
		Index: i, Email: strings.ToLower(email), Kind: kind, Status: st, Lists: lists,
		Created: created, Updated: created.Add(time.Duration(h3%100000) * time.Second),
	}
}
