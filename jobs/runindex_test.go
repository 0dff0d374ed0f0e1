package jobs

import (
	"slices"
	"testing"
)

// TestRunIndex: every result added is found by lookup(its address hash, its contact key), whichever map it
// went to — a free short key, a short key taken by another address with the same low 32 bits, the same
// address under further contacts, a seq whose offset does not fit in 32 bits.
func TestRunIndex(t *testing.T) {
	const a, b = int64(0x1111_2222_3333_4444), int64(0x7777_0000_3333_4444) // same low 32 bits
	type res struct{ h, ck, seq int64 }
	added := []res{
		{a, 1, 100},                  // short
		{b, 2, 101},                  // short key taken by a: long
		{a, 3, 102},                  // a again, another contact: long
		{a, 4, 103},                  // and again: contact
		{0x5555, 5, 104 + 1<<33},     // offset beyond 32 bits: long
		{0x5555 + 1<<40, 6, 1 << 34}, // short key free but offset too big: long
	}
	x := newRunIndex()
	for _, r := range added {
		x.add(r.h, r.ck, r.seq)
	}
	for _, r := range added {
		if got := x.lookup(nil, r.h, r.ck); !slices.Contains(got, r.seq) {
			t.Errorf("lookup(%#x, %d) = %v, missing %d", r.h, r.ck, got, r.seq)
		}
	}
	if got := x.lookup(nil, 0x9999, 9); len(got) != 0 {
		t.Errorf("lookup of an address never added = %v", got)
	}
	if len(x.short) != 1 {
		t.Errorf("%d short entries, want 1 (the others did not fit)", len(x.short))
	}
}
