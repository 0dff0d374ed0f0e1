package jobs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/verify"
)

// The pages of a run go through four stages that overlap, one page in each:
//
//	read (the platform's page at the cursor, the next cursor with it; the store's reusable results)
//	  → prepare (check credits, verify, decide)
//	    → write back (on_failure on the platform)
//	      → commit (store.CommitPage: results, counters, credits and the next cursor in one transaction)
//
// so page N+3 is read and N+2 verified while page N+1 is written back and page N committed. Each stage
// handles pages in cursor order and hands them on through an unbuffered channel, so at most four pages
// are in flight, and a page is always written back before it is committed (the commit records the
// write-back as done). What a page's preparation depends on from the pages ahead of it, not yet
// committed, is carried in memory:
//
//   - Reuse: the store's lookup (RecentResults, in the read stage) sees the results of runs that are not
//     running and of this run up to its last start (the store's re-verify index is merged when a run
//     starts and stops, never per page: see store/resultindex.go). What this Sync decided itself comes
//     from memory: the results of the last three pages prepared (when prepare takes a page, every page
//     before those three was committed: each stage takes a page only after handing its previous one on)
//     and, for the pages committed, the run index (runindex.go: address hash → the stored results' seqs,
//     read back with store.ResultsBySeq when a later page has the address again; ~10 MB for a run of a
//     million). A contact already decided there is reused from it.
//     The write-back it records is the one decided before that page was written back (a write the
//     platform then refused for that one contact is recorded as "none" on its own page only). A contact
//     whose result in this run is for the same list and contact (offset pagination returning it again)
//     is not committed a second time (item.stored): a contact has one result per run.
//   - Credits: the balance read for a page is reduced by what the prepared, uncommitted pages will
//     charge; the balance read and the commit with its charge exclude each other (credit), so a page
//     never counts a charge twice or misses one.
//
// Stopping: when SyncOptions.Stop closes, read reads no further page and every page already read is
// prepared, written back and committed before Sync returns, so a graceful stop never leaves a page read
// or verified without its commit (restart reads on from the next one). A paused page (credits ran out)
// is the last one prepared: a page read after it is dropped unverified (read again on resume).
//
// Errors: a failed read or preparation ends the reading, and the pages before it still go on to their
// commit (so a run whose platform starts refusing the credentials keeps what it did up to there); a
// failed write-back or commit stops every stage at once (the pages behind it cannot be committed before
// it). Pages read or prepared but not committed are replayed from the checkpoint by the retry
// (write-backs are idempotent, see Runner).

// prepared is a page read, looked up, verified and decided, waiting for its write-back and commit.
type prepared struct {
	from    string // the run cursor the page was read at
	page    esp.Page
	items   []*item
	skipped int64
	charge  int  // addresses verified now: what the commit will debit
	partial bool // only part of the page was verified (credits ran out): commit keeps the cursor, then pause
	noCred  bool // nothing could be verified (no credits): nothing to commit; pause
	now     time.Time
	keys    []string                // lower-cased address of each item
	recent  map[string]store.Result // the store's reusable results by lower-cased address
}

// flow is the shared state of the stages of one run.
type flow struct {
	credit  sync.Mutex                // held by a balance read (with pending) and by a commit (with its pending update)
	pending int64                     // charges of prepared pages not committed yet
	recent  []map[string]store.Result // results of the last pages prepared, by lower-cased address
	created time.Time                 // the run's creation (reuse always reaches back to it)

	index *runIndex // where the results this Sync committed are stored (see Reuse above)
}

// remember records the results a commit stored (seqs from store.PageOutcome) in the run index.
func (fl *flow) remember(rs []store.NewResult, seqs []int64) {
	var hs, ss []int64
	for i, seq := range seqs {
		if seq != 0 {
			hs = append(hs, store.AddrHash(strings.ToLower(strings.TrimSpace(rs[i].Email))))
			ss = append(ss, seq)
		}
	}
	fl.index.add(hs, ss)
}

// committed adds to recent this Sync's committed results for the page's addresses (see Reuse above), and
// marks stored the items whose own contact already has one (the same contact's result wins in recent).
func (f *floss) committed(ctx context.Context, fl *flow, items []*item, keys []string, recent map[string]store.Result) error {
	cands := make(map[int][]int64) // item → seqs that may be its address's results
	var seqs []int64
	for i := range items {
		n := len(seqs)
		seqs = fl.index.lookup(seqs, store.AddrHash(keys[i]))
		if len(seqs) > n {
			cands[i] = seqs[n:len(seqs):len(seqs)]
		}
	}
	if len(seqs) == 0 {
		return nil
	}
	rows, err := f.r.d.Store.ResultsBySeq(ctx, f.cnx.ID, seqs)
	if err != nil {
		return err
	}
	for i, cs := range cands {
		it, key := items[i], keys[i]
		var found *store.Result
		for _, seq := range cs {
			r, ok := rows[seq]
			// The address is checked: other addresses share a key now and then.
			if !ok || strings.ToLower(strings.TrimSpace(r.Email)) != key {
				continue
			}
			if r.ListID == it.c.ListID && r.ContactID == it.c.ID {
				found, it.stored = &r, true
				break
			}
			if found == nil {
				found = &r
			}
		}
		if found == nil {
			continue
		}
		if prev, ok := recent[key]; it.stored || !ok || prev.RunID != f.runID {
			recent[key] = *found
		}
	}
	return nil
}

// errPipelineEnd cancels the stages when the commit stage stops on purpose (credits ran out).
var errPipelineEnd = errors.New("jobs: page pipeline ended")

// pages runs the four stages from the run's cursor until the end of the read, a pause, a stop or an
// error; err is the first error of any stage (nil for a stop or a pause). An error a stage meets after
// the stages were cancelled (by another stage's error, a pause or the run's context) is a consequence,
// not a cause, and is dropped.
func (f *floss) pages(ctx context.Context, since time.Time) (Outcome, error) {
	fl := &flow{created: f.run.CreatedAt, index: newRunIndex()}
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		firstErr error
	)
	record := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil && pctx.Err() == nil {
			firstErr = err
		}
	}
	// failed stops every stage at once: the page that failed cannot be committed, nor those behind it.
	failed := func(err error) {
		record(err)
		cancel(err)
	}
	var wg sync.WaitGroup
	toPrepare := make(chan *prepared)
	readStop := make(chan struct{}) // prepare closes it when credits ran out or it failed
	var stopReading sync.Once
	toWrite := make(chan *prepared)
	toCommit := make(chan *prepared)
	stopped := false
	cursor := f.run.Cursor
	wg.Add(3)
	go func() { // read
		defer wg.Done()
		defer close(toPrepare)
		for {
			select {
			case <-f.opt.Stop:
				stopped = true
				return
			case <-readStop:
				return
			case <-pctx.Done():
				return
			default:
			}
			page, err := f.ad.Contacts(pctx, esp.Cursor(cursor), since)
			if err != nil {
				record(err) // the pages read before it go on to their commit
				return
			}
			p, err := f.lookup(pctx, fl, page, cursor)
			if err != nil {
				record(err)
				return
			}
			select {
			case toPrepare <- p:
			case <-readStop:
				return
			case <-pctx.Done():
				return
			}
			if page.Next == "" {
				return
			}
			cursor = string(page.Next)
		}
	}()
	go func() { // prepare
		defer wg.Done()
		defer close(toWrite)
		ended := false
		for r := range toPrepare {
			if ended {
				continue // credits ran out or a page failed: the pages read after it are dropped (read again later)
			}
			p, err := f.prepare(pctx, fl, r)
			if err != nil {
				record(err) // the pages prepared before it go on to their commit
				ended = true
				stopReading.Do(func() { close(readStop) })
				continue
			}
			select {
			case toWrite <- p:
			case <-pctx.Done():
				return
			}
			if p.noCred || p.partial {
				ended = true
				stopReading.Do(func() { close(readStop) })
			}
		}
	}()
	go func() { // write back
		defer wg.Done()
		defer close(toCommit)
		for p := range toWrite {
			if !p.noCred {
				if err := f.writeBack(pctx, p.items); err != nil {
					failed(err)
					return
				}
			}
			select {
			case toCommit <- p:
			case <-pctx.Done():
				return
			}
		}
	}()
	// Commit, in this goroutine, until the write-back stage closes toCommit: after the last page, or once
	// the stages were cancelled (they then hand on nothing more).
	paused := false
	for p := range toCommit {
		if paused || pctx.Err() != nil {
			continue
		}
		pause, err := f.commit(pctx, fl, p)
		if err != nil {
			failed(err)
			continue
		}
		f.progress()
		if pause {
			paused = true
			cancel(errPipelineEnd)
		}
	}
	wg.Wait()
	switch {
	case firstErr != nil:
		return OutcomeFailed, firstErr
	case paused:
		return OutcomePaused, nil
	case ctx.Err() != nil:
		return OutcomeRetry, nil
	case stopped && !f.run.AtEnd:
		return OutcomeStopped, nil
	}
	return OutcomeDone, nil
}

// lookup sorts a page read into contacts to decide and skipped ones and looks up the store's reusable
// results for them (the read stage runs it, off prepare's path: the pages it cannot see committed yet are
// in flow.recent, see above).
func (f *floss) lookup(ctx context.Context, fl *flow, page esp.Page, from string) (*prepared, error) {
	d := f.r.d
	p := &prepared{from: from, page: page, now: d.Now().UTC()}
	emails := make([]string, 0, len(page.Contacts))
	for _, c := range page.Contacts {
		if c.Status == esp.StatusUnsubscribed {
			p.skipped++
			continue
		}
		p.items = append(p.items, &item{c: c, dup: -1})
		emails = append(emails, c.Email)
	}
	// Reuse: results younger than the window, and always this run's own (a page replayed after a partial
	// commit or a crash finds them here); prepare adds those of the pages not committed yet.
	reuseSince := p.now.Add(-d.Settings.ReverifyWindow)
	if d.Settings.ReverifyWindow <= 0 || fl.created.Before(reuseSince) {
		reuseSince = fl.created
	}
	var err error
	if p.recent, err = d.Store.RecentResults(ctx, f.cnx.ID, emails, reuseSince); err != nil {
		return nil, &RetryableError{Err: err}
	}
	p.keys = make([]string, len(p.items))
	for i, it := range p.items {
		p.keys[i] = strings.ToLower(strings.TrimSpace(it.c.Email))
	}
	return p, nil
}

// prepare checks the credits, verifies the addresses they cover and decides every contact of a page
// lookup read.
func (f *floss) prepare(ctx context.Context, fl *flow, p *prepared) (*prepared, error) {
	d := f.r.d
	items, keys, recent := p.items, p.keys, p.recent
	if err := f.committed(ctx, fl, items, keys, recent); err != nil {
		return nil, &RetryableError{Err: err}
	}
	for _, m := range fl.recent {
		for _, k := range keys {
			if r, ok := m[k]; ok {
				recent[k] = r
			}
		}
	}
	// Own results of this run for the same contact win over others (their action is what was done).
	first := map[string]int{}
	need := 0
	for i, it := range items {
		key := keys[i]
		if prev, ok := recent[key]; ok {
			pr := prev
			it.prev = &pr
			if pr.RunID == f.runID && pr.ListID == it.c.ListID && pr.ContactID == it.c.ID {
				it.stored = true
			}
			continue
		}
		if j, ok := first[key]; ok {
			it.dup = j
			continue
		}
		first[key] = i
		it.verify = true
		need++
	}
	budget := need
	if need > 0 {
		fl.credit.Lock()
		bal, err := d.Store.Balance(ctx, f.cnx.AccountID)
		bal -= fl.pending
		if err == nil && bal >= 1 {
			budget = int(min(bal, int64(need)))
			fl.pending += int64(budget)
		}
		fl.credit.Unlock()
		if err != nil {
			return nil, &RetryableError{Err: err}
		}
		if bal < 1 {
			p.noCred = true
			return p, nil
		}
		p.partial = budget < need
	}
	p.charge = budget
	// Verify (at most budget addresses), in page order.
	var ins []verify.Input
	var idx []int
	for i, it := range items {
		if !it.verify {
			continue
		}
		if len(ins) == budget {
			it.verify = false
			continue
		}
		ins = append(ins, verify.Input{Email: it.c.Email, PlatformStatus: string(it.c.Status)})
		idx = append(idx, i)
	}
	if len(ins) > 0 {
		res := d.Engine.VerifyBatch(ctx, ins, f.want)
		if err := ctx.Err(); err != nil {
			return nil, &RetryableError{Err: context.Cause(ctx)}
		}
		for k, i := range idx {
			items[i].raw = res[k]
		}
	}
	// Decide.
	mine := make(map[string]store.Result, len(items))
	for i, it := range items {
		switch {
		case it.verify:
			it.include = true
			it.dec = policy.Decide(it.raw, f.set.Policy, f.rules)
		case it.prev != nil:
			it.include = true
			it.raw = rawOf(*it.prev)
			it.dec = policy.Decide(it.raw, f.set.Policy, f.rules)
		case it.dup >= 0 && items[it.dup].verify:
			it.include = true
			it.raw = items[it.dup].raw
			it.dec = policy.Decide(it.raw, f.set.Policy, f.rules)
		}
		if it.include && it.dec.WriteBack {
			it.action = f.set.OnFailure
			if it.action == OnFailureUpdateFields && f.caps.Tags {
				it.action = "tag"
			}
		}
		if it.include {
			it.res = f.result(it, p.now)
			nr := it.res
			mine[keys[i]] = store.Result{RunID: f.runID, ConnectionID: f.cnx.ID,
				ContactID: nr.ContactID, ListID: nr.ListID, Email: nr.Email, Status: nr.Status, Reason: nr.Reason, Passed: nr.Passed,
				Suggestion: nr.Suggestion, Action: nr.Action, Reused: nr.Reused, Evidence: nr.Evidence, VerifiedAt: nr.VerifiedAt}
		}
	}
	// The pages that may not be committed when the next one is prepared: this one and the two before it.
	fl.recent = append(fl.recent, mine)
	if len(fl.recent) > 3 {
		fl.recent = fl.recent[1:]
	}
	return p, nil
}

// commit commits a written-back page; paused reports that credits ran out on it.
func (f *floss) commit(ctx context.Context, fl *flow, p *prepared) (paused bool, err error) {
	d := f.r.d
	if p.noCred {
		return true, nil
	}
	pc := store.PageCommit{RunID: f.runID, FromCursor: p.from, NextCursor: string(p.page.Next), KeepCursor: p.partial}
	if !p.partial {
		pc.Seen, pc.Skipped = int64(len(p.page.Contacts)), p.skipped
	}
	if p.page.Total >= 0 && f.caps.TotalKnown {
		t := int64(p.page.Total)
		pc.Total = &t
	}
	pc.Results = make([]store.NewResult, 0, len(p.items))
	for _, it := range p.items {
		if !it.include || it.stored {
			continue
		}
		r := it.res
		if r.Action = it.action; r.Action == "" {
			r.Action = "none" // the write-back may have changed it (refused for this contact)
		}
		pc.Results = append(pc.Results, r)
	}
	fl.credit.Lock()
	out, err := d.Store.CommitPage(ctx, pc)
	fl.pending -= int64(p.charge)
	fl.credit.Unlock()
	if err != nil {
		if errors.Is(err, store.ErrInsufficientCredits) {
			return true, nil
		}
		return false, &RetryableError{Err: err}
	}
	f.run = out.Run
	fl.remember(pc.Results, out.Seqs)
	if m := d.Metrics; m != nil {
		m.credits.Add(float64(out.Charged))
		for _, r := range pc.Results {
			m.contacts.WithLabelValues(r.Reason, boolLabel(r.Passed)).Inc()
		}
		m.contactsSkipped.Add(float64(pc.Skipped))
	}
	return p.partial, nil
}
