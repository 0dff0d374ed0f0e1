package jobs

import (
	"slices"
	"sync"
)

// runIndex remembers where the results a Sync committed are stored, by address, so a later page of the
// run can reuse them (the store's re-verify index holds a run's results only once the run stops; see
// store/resultindex.go and "Reuse" in pages.go). It holds no address: an entry is the low 32 bits of the
// address hash (store.AddrHash) and the seq's offset from the first seq remembered, packed in one uint64,
// and lookup returns every seq whose entry has the address's key. Other addresses share a key now and then
// (about 120 pairs in a run of a million) and the same address has one entry per list and contact, so the
// caller reads the candidates back (store.ResultsBySeq) and keeps those with the address; no result
// remembered is ever missed.
//
// Memory is what matters here (a run of a million contacts remembers a million results within the
// worker's 200 MB): entries sit in sorted slices, 8 bytes each plus the slice's growth slack — ~10 MB
// at a million, where a map of int64 → int64 took 38 MB and raised the floss benchmark's peak RSS by
// ~31 MB. New entries go to fresh (sorted, at most freshMax entries), which is merged into sorted when
// full, so adding a page costs a few hundred KB of copying, not the whole index. A seq whose offset does
// not fit in 32 bits (4 billion results stored by all runs during this one) goes to the small map far.
type runIndex struct {
	mu     sync.Mutex
	base   int64    // the first seq remembered (offsets are from it)
	sorted []uint64 // key<<32 | offset, sorted
	fresh  []uint64 // the same, sorted, merged into sorted when it reaches freshMax
	far    map[uint32][]int64
}

const freshMax = 1 << 16

func newRunIndex() *runIndex { return &runIndex{far: map[uint32][]int64{}} }

// add remembers the stored results of one commit: address hash hashes[i] at seqs[i].
func (x *runIndex) add(hashes, seqs []int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	batch := make([]uint64, 0, len(seqs))
	for i, seq := range seqs {
		if x.base == 0 {
			x.base = seq
		}
		key, off := uint32(hashes[i]), seq-x.base
		if off < 0 || off > 1<<32-1 {
			x.far[key] = append(x.far[key], seq)
			continue
		}
		batch = append(batch, uint64(key)<<32|uint64(off))
	}
	slices.Sort(batch)
	x.fresh = mergeSorted(x.fresh, batch)
	if len(x.fresh) >= freshMax {
		x.sorted = mergeSorted(x.sorted, x.fresh)
		x.fresh = x.fresh[:0]
	}
}

// mergeSorted merges b into a (both sorted) in place from the back, growing a once.
func mergeSorted(a, b []uint64) []uint64 {
	n := len(a)
	a = slices.Grow(a, len(b))[:n+len(b)]
	i, j := n-1, len(b)-1
	for k := len(a) - 1; j >= 0; k-- {
		if i >= 0 && a[i] > b[j] {
			a[k] = a[i]
			i--
		} else {
			a[k] = b[j]
			j--
		}
	}
	return a
}

// lookup appends to seqs every result remembered under address hash h's key.
func (x *runIndex) lookup(seqs []int64, h int64) []int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	key := uint32(h)
	for _, s := range [][]uint64{x.sorted, x.fresh} {
		i, _ := slices.BinarySearch(s, uint64(key)<<32)
		for ; i < len(s) && uint32(s[i]>>32) == key; i++ {
			seqs = append(seqs, x.base+int64(uint32(s[i])))
		}
	}
	return append(seqs, x.far[key]...)
}
