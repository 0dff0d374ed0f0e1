package verify

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Suggester proposes the intended domain when a domain looks like a typo of a
// popular mail domain (gmial.cmo → gmail.com). It is careful rather than eager:
//
//   - a domain that is itself popular or on the free-mail list (a real domain)
//     is never corrected;
//   - a top-level label that does not exist but is a classic slip of com, net or
//     org (cmo, con, ocm, nte, ogr, …) is fixed for any domain;
//   - otherwise the distance is a keyboard-aware Damerau-Levenshtein (QWERTY
//     neighbours, transpositions and doubled letters cost half, a missing
//     letter three quarters) to each popular domain, and a suggestion is made
//     only when the best target is within a length-dependent budget and clearly
//     ahead (by ≥ 0.25) of the runner-up; names of ≤ 3 letters (aol, gmx, msn…)
//     only get their top-level part corrected, since short names collide with
//     real company domains.
//
// Results are cached per domain. Safe for concurrent use.
type Suggester struct {
	popular []cand
	popSet  map[string]struct{}
	known   map[string]struct{}
	cache   sync.Map // domain → string
	cached  atomic.Int64
}

type cand struct {
	domain string
	name   string // first label
	suffix string // the rest after the first dot
}

const suggestCacheMax = 200_000

// NewSuggester builds a suggester from the popular domains (targets) and a set
// of known real domains that are never corrected (may be nil).
func NewSuggester(popular []string, known map[string]struct{}) *Suggester {
	s := &Suggester{popSet: map[string]struct{}{}, known: known}
	for _, d := range popular {
		d = strings.ToLower(d)
		i := strings.IndexByte(d, '.')
		if i < 0 {
			continue
		}
		s.popular = append(s.popular, cand{d, d[:i], d[i+1:]})
		s.popSet[d] = struct{}{}
	}
	return s
}

// tldFix maps top-level labels that do not exist to what was meant.
var tldFix = map[string]string{
	"cmo": "com", "ocm": "com", "con": "com", "cpm": "com", "cim": "com", "clm": "com", "vom": "com",
	"xom": "com", "coom": "com", "comm": "com", "copm": "com", "cok": "com", "c0m": "com", "ccom": "com",
	"comn": "com", "cxom": "com", "coim": "com", "come": "com", "ckm": "com", "cpom": "com", "dom": "com",
	"nte": "net", "nett": "net", "ner": "net", "nrt": "net", "met": "net", "nwt": "net",
	"ogr": "org", "orgg": "org", "rog": "org", "prg": "org", "otg": "org",
}

// SuggestDomain returns the corrected domain, or "" when there is no confident
// suggestion. domain must be lower-case.
func (s *Suggester) SuggestDomain(domain string) string {
	if _, ok := s.popSet[domain]; ok {
		return ""
	}
	if _, ok := s.known[domain]; ok {
		return ""
	}
	if v, ok := s.cache.Load(domain); ok {
		return v.(string)
	}
	r := s.suggest(domain)
	if s.cached.Load() < suggestCacheMax {
		if _, loaded := s.cache.LoadOrStore(domain, r); !loaded {
			s.cached.Add(1)
		}
	}
	return r
}

func (s *Suggester) suggest(d string) string {
	if len(d) > 64 {
		return ""
	}
	fixed := d
	// dotless: gmailcom → gmail.com
	if !strings.Contains(d, ".") {
		for _, c := range s.popular {
			if d == c.name+strings.ReplaceAll(c.suffix, ".", "") {
				return c.domain
			}
		}
		return ""
	}
	i := strings.LastIndexByte(d, '.')
	if f, ok := tldFix[d[i+1:]]; ok {
		fixed = d[:i+1] + f
		if _, ok := s.popSet[fixed]; ok {
			return fixed
		}
	}
	if best := s.nearest(fixed); best != "" {
		return best
	}
	if fixed != d && checkLDH(fixed) == nil {
		return fixed // a TLD fix only when the rest of the domain is well formed
	}
	return ""
}

func (s *Suggester) nearest(d string) string {
	name := d
	if i := strings.IndexByte(d, '.'); i >= 0 {
		name = d[:i]
	}
	best, second := float32(99), float32(99)
	bestD := ""
	for _, c := range s.popular {
		var budget float32
		switch n := len(c.name); {
		case n <= 3:
			if name != c.name {
				continue // short names: only the suffix may be corrected
			}
			budget = 1.0
		case n <= 5:
			budget = 1.0
		default:
			budget = 1.5
		}
		if ccSwap(d, c.domain) {
			continue // hotmail.dk is not a slip of hotmail.de: both are country domains
		}
		diff := len(d) - len(c.domain)
		if diff < -3 || diff > 3 {
			continue
		}
		cost := keyDistance(d, c.domain, budget+0.5)
		if cost > budget {
			if cost < second {
				second = cost
			}
			continue
		}
		switch {
		case cost < best:
			if bestD != c.domain {
				second = best
			}
			best, bestD = cost, c.domain
		case cost < second:
			second = cost
		}
	}
	if bestD == "" || second-best < 0.25 {
		return ""
	}
	return bestD
}

// ccSwap reports whether a and b differ only in a two-letter top-level label
// that is not a transposition (yahoo.cn vs yahoo.ca; yahoo.rf vs yahoo.fr is a slip).
func ccSwap(a, b string) bool {
	ia, ib := strings.LastIndexByte(a, '.'), strings.LastIndexByte(b, '.')
	if ia < 0 || ib < 0 || a[:ia] != b[:ib] {
		return false
	}
	ta, tb := a[ia+1:], b[ib+1:]
	return len(ta) == 2 && len(tb) == 2 && ta != tb && !(ta[0] == tb[1] && ta[1] == tb[0])
}

// SuggestAddress returns local@corrected-domain or "".
func (s *Suggester) SuggestAddress(local, domain string) string {
	if d := s.SuggestDomain(domain); d != "" {
		return local + "@" + d
	}
	return ""
}

// keyboard geometry (QWERTY, staggered rows)
var keyPos = func() (p [256][2]float32) {
	for i := range p {
		p[i] = [2]float32{-10, -10}
	}
	rows := []string{"1234567890-", "qwertyuiop", "asdfghjkl;", "zxcvbnm,./"}
	offs := []float32{0, 0.5, 0.75, 1.25}
	for r, row := range rows {
		for c := 0; c < len(row); c++ {
			p[row[c]] = [2]float32{float32(r), float32(c) + offs[r]}
		}
	}
	return
}()

func adjacent(a, b byte) bool {
	pa, pb := keyPos[a], keyPos[b]
	if pa[0] < 0 || pb[0] < 0 || a == b {
		return false
	}
	dr, dc := pa[0]-pb[0], pa[1]-pb[1]
	if dr < 0 {
		dr = -dr
	}
	if dc < 0 {
		dc = -dc
	}
	return dr <= 1 && dc <= 1
}

const maxKD = 72

// keyDistance is the weighted optimal-string-alignment distance from typed a
// to intended b; it returns early with a value > limit when the limit is exceeded.
func keyDistance(a, b string, limit float32) float32 {
	la, lb := len(a), len(b)
	if la >= maxKD || lb >= maxKD {
		return 99
	}
	var r0, r1, r2 [maxKD]float32 // rows i-2, i-1, i
	p2, p1, cur := &r0, &r1, &r2
	for j := 0; j <= lb; j++ {
		p1[j] = float32(j) * 0.75
	}
	for i := 1; i <= la; i++ {
		cur[0] = float32(i)
		rowMin := cur[0]
		ca := a[i-1]
		for j := 1; j <= lb; j++ {
			cb := b[j-1]
			var v float32
			if ca == cb {
				v = p1[j-1]
			} else {
				sub := float32(1)
				if adjacent(ca, cb) {
					sub = 0.5
				}
				v = p1[j-1] + sub
			}
			// a has an extra char: cheap when doubled or next to a neighbour key
			del := float32(1)
			if (i >= 2 && a[i-2] == ca) || (i < la && a[i] == ca) || adjacent(ca, cb) {
				del = 0.5
			}
			if x := p1[j] + del; x < v {
				v = x
			}
			// a lacks b's char
			if x := cur[j-1] + 0.75; x < v {
				v = x
			}
			if i > 1 && j > 1 && ca == b[j-2] && a[i-2] == cb {
				if x := p2[j-2] + 0.5; x < v {
					v = x
				}
			}
			cur[j] = v
			if v < rowMin {
				rowMin = v
			}
		}
		if rowMin > limit {
			return rowMin
		}
		p2, p1, cur = p1, cur, p2
	}
	return p1[lb]
}
