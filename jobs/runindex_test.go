package jobs

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRunIndex: every result added is found by lookup(its address hash) — keys shared by two addresses
// (same low 32 bits), one address under several contacts, offsets beyond 32 bits, entries in fresh and
// after merges into sorted — and an address never added finds nothing.
func TestRunIndex(t *testing.T) {
	const a, b = int64(0x1111_2222_3333_4444), int64(0x7777_0000_3333_4444) // same low 32 bits
	x := newRunIndex()
	x.add([]int64{a, b, a}, []int64{100, 101, 102})
	x.add([]int64{0x5555, 0x6666}, []int64{103 + 1<<33, 104}) // the first offset is beyond 32 bits
	type res struct{ h, seq int64 }
	added := []res{{a, 100}, {b, 101}, {a, 102}, {0x5555, 103 + 1<<33}, {0x6666, 104}}
	// Enough random pages to merge fresh into sorted several times.
	rng := rand.New(rand.NewPCG(1, 2))
	seq := int64(105)
	for page := 0; page < 3*freshMax/1000+1; page++ {
		var hs, ss []int64
		for range 1000 {
			h := int64(rng.Uint64())
			hs, ss = append(hs, h), append(ss, seq)
			if rng.IntN(50) == 0 {
				added = append(added, res{h, seq})
			}
			seq++
		}
		x.add(hs, ss)
	}
	if len(x.sorted) < 2*freshMax {
		t.Fatalf("%d entries in sorted: the merges did not happen", len(x.sorted))
	}
	if !slices.IsSorted(x.sorted) || !slices.IsSorted(x.fresh) {
		t.Fatal("entries out of order")
	}
	for _, r := range added {
		if got := x.lookup(nil, r.h); !slices.Contains(got, r.seq) {
			t.Errorf("lookup(%#x) = %v, missing %d", r.h, got, r.seq)
		}
	}
	if got := x.lookup(nil, a); len(got) != 3 {
		t.Errorf("lookup(a) = %v, want a's two results and b's (same key)", got)
	}
	if got := x.lookup(nil, 0x9999_0000_0000); len(got) != 0 {
		t.Errorf("lookup of an address never added = %v", got)
	}
}
