package jobs

import (
	"sync"

	"github.com/autofloss/autofloss/store"
)

// runIndex remembers where the results a Sync committed are stored, by address, so a later page of the
// run can reuse them (the store's re-verify index holds a run's results only once the run stops; see
// store/resultindex.go and "Reuse" in pages.go). It holds no address: keys are hashes (store.AddrHash)
// and values seqs, which the caller reads back with store.ResultsBySeq and checks against the address.
//
// Memory is what matters here (a run of a million contacts remembers a million results within the
// worker's 200 MB): the common entry is 8 bytes — the hash's low 32 bits → the seq's offset from the
// first one remembered — in a map of about 20 bytes an entry at a million (a map of int64 → int64 took
// 38 MB there and raised the floss benchmark's peak RSS by ~31 MB). What does not fit that form goes to
// two small maps: long (full hash → seq) when the short key is taken (another address with the same low
// 32 bits — about 120 of a million — or the same address under another list or contact) or the offset
// does not fit, and contact (contactKey → seq) when the full hash is taken too. Every result remembered
// is thus found by lookup(its address, its contact), whichever map it went to; lookup may return seqs of
// other addresses, which the caller filters out.
type runIndex struct {
	mu      sync.Mutex
	base    int64 // the first seq remembered (offsets are from it)
	short   map[uint32]uint32
	long    map[int64]int64
	contact map[int64]int64
}

func newRunIndex() *runIndex {
	return &runIndex{short: map[uint32]uint32{}, long: map[int64]int64{}, contact: map[int64]int64{}}
}

// add remembers a stored result: address hash h, contact key ck (contactKey), seq.
func (x *runIndex) add(h, ck, seq int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.base == 0 {
		x.base = seq
	}
	off := seq - x.base + 1 // 0 = absent
	if _, taken := x.short[uint32(h)]; !taken && off > 0 && off <= 1<<32-1 {
		x.short[uint32(h)] = uint32(off)
		return
	}
	if _, taken := x.long[h]; !taken {
		x.long[h] = seq
		return
	}
	x.contact[ck] = seq
}

// lookup appends to seqs the results remembered under address hash h or contact key ck.
func (x *runIndex) lookup(seqs []int64, h, ck int64) []int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	if off, ok := x.short[uint32(h)]; ok {
		seqs = append(seqs, x.base+int64(off)-1)
	}
	if seq, ok := x.long[h]; ok {
		seqs = append(seqs, seq)
	}
	if seq, ok := x.contact[ck]; ok {
		seqs = append(seqs, seq)
	}
	return seqs
}

// contactKey is the hash of one contact's result in a run: list, contact and lower-cased address.
func contactKey(list, contact, lower string) int64 {
	return store.AddrHash(list + "\x00" + contact + "\x00" + lower)
}
