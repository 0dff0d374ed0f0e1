package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/verify"
)

// Runner executes floss runs: the floss:sync handler, the floss:verify_contact handler and
// `autofloss sync` all call it, so the worker and the CLI run the very same code.
//
// The guarantees of one run, and how they hold:
//
//   - Never two runs of one connection at once: the per-connection lease (store.AcquireLease) is taken
//     before anything is read and renewed every third of its TTL while the run works; a run that loses it
//     stops at once without committing (its page is replayed by whoever holds the lease next). A second
//     task for a connection whose lease is held returns ErrLeaseBusy: asynq retries it after the lease TTL
//     without counting a failure (IsFailure). It cannot tell a live holder from a dead one (a worker
//     killed mid-run keeps the lease until it expires), so it never gives up on its run: once it gets the
//     lease it resumes the run from the checkpoint, or finds it finished and returns nil. Every task names
//     its run (the API and the scheduler open the run before enqueueing), so a duplicate task never opens
//     a second run.
//   - One transaction per page (store.CommitPage): results, counters, credit debit and the next cursor.
//     Pages go through overlapping stages (read, prepare, write back, commit; see pages.go), so the
//     next pages are read and verified while one commits; pages are committed in order. Everything
//     before the commit (reading, verifying, write-backs) is replayable: a crash or SIGTERM
//     mid-page leaves the checkpoint at the page's start, the page is read again and its write-backs,
//     which are idempotent (the same fields set again, an unsubscribe of an unsubscribed contact, a delete
//     of a deleted one answering not-found), are repeated harmlessly. A commit whose cursor moved meanwhile
//     is refused by the store (ErrStaleCursor), so a page is never counted twice.
//   - Credits: before verifying a page the account's balance is read (less what the pages prepared but
//     not yet committed will charge). When it covers the contacts that
//     need verifying the page is committed whole. When it covers only some (0 < balance < need), exactly
//     that many are verified and committed WITHOUT moving the cursor (PageCommit.KeepCursor) and the run
//     is paused (paused_no_credits); when it covers none the run is paused before verifying. On resume
//     the page is read again at the same cursor; its contacts already committed in this run are found by
//     the re-verify lookup (which always reaches back to the run's creation; the store merges a run's
//     results into its re-verify index when the run pauses or starts) and not committed again (a commit
//     at the same cursor would also leave them out: see store.CommitPage; only newly inserted results are
//     charged), so no contact is ever charged twice. A concurrent spender that makes CommitPage fail with ErrInsufficientCredits
//     leaves nothing committed: the run pauses and the page is replayed.
//   - Errors: the platform refusing the credentials disconnects the connection (credentials_revoked),
//     fails the run and is not retried. Throttling, 5xx and timeouts return a RetryableError so asynq
//     retries from the checkpoint after the platform's retry-after when known; those retries never mark
//     the run failed — only the last allowed attempt does (see the handler).
//   - Reuse: a contact whose address has a result younger than the re-verify window (or already in this
//     run) reuses it at no cost. Its write-back is not repeated when the reused result already records the
//     same action on the same contact and list; the new result still records that action (the contact
//     carries the write-back), so written_back counts failed contacts whose write-back is in place.
type Runner struct {
	d Deps
}

// NewRunner checks deps and fills defaults.
func NewRunner(d Deps) (*Runner, error) {
	if err := d.defaults(); err != nil {
		return nil, err
	}
	return &Runner{d: d}, nil
}

// Deps returns the runner's dependencies (defaults filled).
func (r *Runner) Deps() Deps { return r.d }

// SyncOptions tune one call of Sync.
type SyncOptions struct {
	TaskID string // the asynq task id ("" outside asynq): recorded on a new run, part of the lease holder
	// Progress is called after every committed page and at the end with the run as stored.
	Progress func(store.Run)
	// Stop, when it closes, makes the run read no further page and stop once the pages in hand (at most
	// four, see pages.go) are written back and committed (graceful shutdown); Sync then returns
	// ErrStopping.
	Stop <-chan struct{}
}

// Outcome says what Sync did.
type Outcome string

// Sync outcomes.
const (
	OutcomeDone         Outcome = "done"          // the run finished
	OutcomePaused       Outcome = "paused"        // out of credits: paused_no_credits with its checkpoint
	OutcomeDisconnected Outcome = "disconnected"  // the connection is not active (or was just disconnected)
	OutcomeBusy         Outcome = "busy"          // another live run holds the connection
	OutcomeNothing      Outcome = "nothing_to_do" // the named run is already finished, or the connection is gone
	OutcomeFailed       Outcome = "failed"        // the run was marked failed
	OutcomeRetry        Outcome = "retry"         // a retryable error: asynq retries from the checkpoint
	OutcomeStopped      Outcome = "stopped"       // graceful stop after a committed page
)

// Errors Sync returns.
var (
	// ErrLeaseBusy: another holder has the lease and its run looks dead; retry after the lease TTL.
	ErrLeaseBusy = errors.New("jobs: connection lease held by another worker")
	// ErrStopping: the worker is shutting down; the run stopped after a committed page.
	ErrStopping = errors.New("jobs: worker stopping; run checkpointed")
	// ErrLeaseLost: the lease was lost mid-run (expired while the store was unreachable); nothing of the
	// page in hand was committed.
	ErrLeaseLost = errors.New("jobs: connection lease lost")
)

// RetryableError is an error asynq should retry after Wait (0 = the default backoff).
type RetryableError struct {
	Err  error
	Wait time.Duration
}

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// PermanentError is an error that must not be retried (the handler wraps it in asynq.SkipRetry).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Sync runs (or resumes) the floss run of one connection until it is done, paused, failed or stopped.
func (r *Runner) Sync(ctx context.Context, p SyncPayload, o SyncOptions) (store.Run, Outcome, error) {
	d := r.d
	log := d.Log.With().Str("connection_id", p.ConnectionID).Str("task_id", o.TaskID).Logger()
	cnx, err := d.Store.ConnectionByID(ctx, p.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Run{}, OutcomeNothing, nil
	}
	if err != nil {
		return store.Run{}, OutcomeRetry, &RetryableError{Err: err}
	}
	if cnx.Status != store.StatusActive {
		return store.Run{}, OutcomeDisconnected, nil
	}
	// The lease.
	holder := d.Settings.Holder + ":" + o.TaskID
	ttl := d.Settings.LeaseTTL
	ok, err := d.Store.AcquireLease(ctx, cnx.ID, holder, ttl)
	if err != nil {
		return store.Run{}, OutcomeRetry, &RetryableError{Err: err}
	}
	if !ok {
		log.Debug().Msg("connection lease held elsewhere; retrying after its TTL")
		return store.Run{}, OutcomeBusy, &RetryableError{Err: ErrLeaseBusy, Wait: ttl}
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				ok, err := d.Store.RenewLease(runCtx, cnx.ID, holder, ttl)
				if err == nil && !ok {
					cancel(ErrLeaseLost)
					return
				}
			}
		}
	}()
	defer func() {
		cancel(nil)
		wg.Wait()
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = d.Store.ReleaseLease(rctx, cnx.ID, holder)
		rcancel()
	}()

	// Under the lease: a task naming a run that is finished has nothing left to do (checked only now, so a
	// run finishing while this task waited for the lease is never followed by a new one).
	if p.RunID != "" {
		named, err := d.Store.RunByID(runCtx, p.RunID)
		if err == nil && (named.State == store.RunDone || named.State == store.RunFailed) {
			return named, OutcomeNothing, nil
		}
	}
	run, err := r.openRun(runCtx, cnx, o.TaskID)
	if err != nil {
		return store.Run{}, OutcomeRetry, &RetryableError{Err: err}
	}
	log = log.With().Str("run_id", run.ID).Logger()
	if run.State == store.RunPausedNoCredits {
		bal, err := d.Store.Balance(runCtx, cnx.AccountID)
		if err != nil {
			return run, OutcomeRetry, &RetryableError{Err: err}
		}
		if bal < 1 {
			return run, OutcomePaused, nil
		}
	}
	f := &floss{r: r, cnx: cnx, run: run, runID: run.ID, log: log, opt: o, set: parseSettings(cnx.Settings)}
	run, outcome, err := f.do(runCtx)
	if cause := context.Cause(runCtx); errors.Is(cause, ErrLeaseLost) && err != nil {
		return run, OutcomeRetry, &RetryableError{Err: ErrLeaseLost, Wait: ttl}
	}
	return run, outcome, err
}

// openRun returns the connection's unfinished run, or opens one: full when the connection never finished
// a run, else incremental from last_synced_at minus the lookback.
func (r *Runner) openRun(ctx context.Context, cnx store.Connection, taskID string) (store.Run, error) {
	if run, err := r.d.Store.OpenRun(ctx, cnx.ID); err == nil {
		return run, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Run{}, err
	}
	nr := NewRunFor(cnx, r.d.Settings.IncrementalLookback)
	nr.TaskID = taskID
	run, _, err := r.d.Store.OpenOrCreateRun(ctx, nr)
	return run, err
}

// NewRunFor is the run a connection gets when it has none open: full when it never completed one
// (last_synced_at unset), else incremental from last_synced_at minus lookback (platforms are eventually
// consistent). Where the platform has no changed-since filter the worker reads everything anyway (a full
// rescan that reuses fresh results at no cost).
func NewRunFor(cnx store.Connection, lookback time.Duration) store.NewRun {
	nr := store.NewRun{ConnectionID: cnx.ID, Kind: store.RunFull}
	if cnx.LastSyncedAt != nil {
		since := cnx.LastSyncedAt.Add(-lookback)
		nr.Kind, nr.Since = store.RunIncremental, &since
	}
	return nr
}

// floss is one run in progress.
type floss struct {
	r     *Runner
	cnx   store.Connection
	run   store.Run // as last committed (written by the commit stage only, see pages.go)
	runID string    // run.ID, for the stages that run beside the commit
	set   cnxSettings
	rules *policy.Rules
	want  verify.Checks
	ad    esp.Adapter
	caps  esp.Capabilities
	log   zerolog.Logger
	opt   SyncOptions
}

func (f *floss) do(ctx context.Context) (store.Run, Outcome, error) {
	d := f.r.d
	rules, err := d.Store.RulesForConnection(ctx, f.cnx.ID)
	if err != nil {
		return f.run, OutcomeRetry, &RetryableError{Err: err}
	}
	f.rules = compileRules(rules)
	f.want = policy.WantedChecks(f.set.Policy)
	ad, err := f.r.adapter(ctx, f.cnx)
	if err != nil {
		return f.fail(ctx, err)
	}
	f.ad, f.caps = ad, ad.Capabilities()
	if f.run, err = d.Store.StartRun(ctx, f.run.ID); err != nil {
		return f.run, OutcomeRetry, &RetryableError{Err: err}
	}
	f.progress()
	var since time.Time
	if f.run.Kind == store.RunIncremental && f.caps.ChangedSince && f.run.Since != nil {
		since = *f.run.Since
	}
	if !f.run.AtEnd && f.set.OnFailure == OnFailureUpdateFields {
		if err := f.ad.EnsureFields(ctx); err != nil {
			return f.fail(ctx, err)
		}
	}
	if !f.run.AtEnd {
		outcome, err := f.pages(ctx, since)
		switch {
		case err != nil:
			return f.fail(ctx, err)
		case outcome == OutcomeStopped:
			return f.run, OutcomeStopped, &RetryableError{Err: ErrStopping, Wait: time.Second}
		case outcome == OutcomeRetry:
			return f.run, OutcomeRetry, &RetryableError{Err: context.Cause(ctx)}
		case outcome == OutcomePaused:
			if err := d.Store.PauseRun(ctx, f.run.ID); err != nil {
				return f.run, OutcomeRetry, &RetryableError{Err: err}
			}
			f.run.State = store.RunPausedNoCredits
			f.log.Info().Int64("credits_used", f.run.CreditsUsed).Msg("run paused: no credits left")
			f.progress()
			return f.run, OutcomePaused, nil
		}
	}
	run, err := d.Store.FinishRun(ctx, f.run.ID)
	if err != nil {
		return f.run, OutcomeRetry, &RetryableError{Err: err}
	}
	f.run = run
	f.progress()
	f.log.Info().Int64("seen", run.Counts.Seen).Int64("verified", run.Counts.Verified).Int64("reused", run.Counts.Reused).
		Int64("failed", run.Counts.Failed).Int64("written_back", run.Counts.WrittenBack).Msg("run done")
	return run, OutcomeDone, nil
}

func (f *floss) progress() {
	if f.opt.Progress != nil {
		f.opt.Progress(f.run)
	}
}

// fail classifies an error of the run (see Runner).
func (f *floss) fail(ctx context.Context, err error) (store.Run, Outcome, error) {
	d := f.r.d
	bg := context.WithoutCancel(ctx)
	switch {
	case errors.Is(err, store.ErrInsufficientCredits):
		if perr := d.Store.PauseRun(bg, f.run.ID); perr != nil {
			return f.run, OutcomeRetry, &RetryableError{Err: perr}
		}
		f.run.State = store.RunPausedNoCredits
		f.progress()
		return f.run, OutcomePaused, nil
	case errors.Is(err, esp.ErrCredentialsRejected):
		if merr := d.Store.MarkCredentialsRevoked(bg, f.cnx.ID); merr != nil && !errors.Is(merr, store.ErrNotFound) {
			return f.run, OutcomeRetry, &RetryableError{Err: merr}
		}
		_ = d.Store.FailRun(bg, f.run.ID, store.RunError{Code: "credentials_revoked",
			Message: "the platform refused the stored credentials; reconnect the connection"})
		f.run.State = store.RunFailed
		f.log.Warn().Msg("platform refused the credentials: connection disconnected (credentials_revoked)")
		f.progress()
		return f.run, OutcomeDisconnected, &PermanentError{Err: err}
	}
	var ce *esp.CredentialError
	if errors.As(err, &ce) {
		_ = d.Store.FailRun(bg, f.run.ID, store.RunError{Code: "invalid_credentials", Message: ce.Error()})
		f.run.State = store.RunFailed
		return f.run, OutcomeFailed, &PermanentError{Err: err}
	}
	re := &RetryableError{Err: err}
	var ee *esp.Error
	if errors.As(err, &ee) && ee.RetryAfter > 0 {
		re.Wait = ee.RetryAfter
	}
	return f.run, OutcomeRetry, re
}

// FailRun marks the run failed after its retries are exhausted (the handler calls it on the last attempt).
func (r *Runner) FailRun(ctx context.Context, runID string, err error) {
	code := "platform_unavailable"
	switch {
	case errors.Is(err, esp.ErrThrottled):
		code = "platform_throttled"
	case errors.Is(err, esp.ErrUnavailable), errors.Is(err, esp.ErrBadRequest):
	default:
		code = "internal_error"
	}
	_ = r.d.Store.FailRun(context.WithoutCancel(ctx), runID, store.RunError{Code: code, Message: safeMessage(err)})
}

// safeMessage is an error text fit for a run's error: esp errors never carry credentials or addresses
// (they redact paths); other errors are reduced to a generic text.
func safeMessage(err error) string {
	var ee *esp.Error
	if errors.As(err, &ee) {
		return ee.Error()
	}
	switch {
	case errors.Is(err, esp.ErrThrottled), errors.Is(err, esp.ErrUnavailable), errors.Is(err, esp.ErrBadRequest):
		return err.Error()
	}
	return "the run kept failing; see the worker logs"
}

// adapter unseals the credentials and opens the platform adapter.
func (r *Runner) adapter(ctx context.Context, cnx store.Connection) (esp.Adapter, error) {
	creds, err := r.d.Store.ConnectionCredentials(ctx, cnx.ID)
	if err != nil {
		return nil, &RetryableError{Err: err}
	}
	return r.d.Registry.Open(cnx.Type, creds, r.d.Client, r.d.ESP)
}

// item is one contact of a page on its way to a result.
type item struct {
	c       esp.Contact
	prev    *store.Result // reused result (re-verify window, or already committed in this run)
	dup     int           // index of the item on this page whose verification it shares (-1: none)
	raw     verify.Result
	verify  bool // verified now: one credit
	dec     policy.Decision
	action  string
	include bool
	stored  bool            // this run already has its result for this list and contact: not committed again
	res     store.NewResult // the result to commit (prepare builds it; its Action follows action)
}

func boolLabel(b bool) string {
	if b {
		return "passed"
	}
	return "failed"
}

// evidence is what a result stores as evidence: the engine's evidence plus what it found before the
// connection's gates and rules decided (so a reused result can be decided again under today's settings).
type evidence struct {
	verify.Evidence
	FoundStatus verify.Status `json:"found_status,omitempty"`
	FoundReason verify.Reason `json:"found_reason,omitempty"`
	Role        bool          `json:"role,omitempty"`
	Disposable  bool          `json:"disposable,omitempty"`
	Free        bool          `json:"free,omitempty"`
}

// rawOf rebuilds the raw verification result of a stored result.
func rawOf(r store.Result) verify.Result {
	var ev evidence
	_ = json.Unmarshal(r.Evidence, &ev)
	raw := verify.Result{Email: r.Email, Status: verify.Status(r.Status), Reason: verify.Reason(r.Reason),
		Suggestion: r.Suggestion, Evidence: ev.Evidence, VerifiedAt: r.VerifiedAt, Role: ev.Role, Disposable: ev.Disposable, Free: ev.Free}
	if ev.FoundReason != "" {
		raw.Reason, raw.Status = ev.FoundReason, ev.FoundStatus
	}
	return raw
}

func (f *floss) result(it *item, now time.Time) store.NewResult {
	ev, _ := json.Marshal(evidence{Evidence: it.raw.Evidence, FoundStatus: it.raw.Status, FoundReason: it.raw.Reason,
		Role: it.raw.Role, Disposable: it.raw.Disposable, Free: it.raw.Free})
	vat := it.raw.VerifiedAt
	if vat.IsZero() {
		vat = now
	}
	action := it.action
	if action == "" {
		action = "none"
	}
	return store.NewResult{
		ContactID: it.c.ID, ListID: it.c.ListID, Email: it.c.Email, Status: string(it.dec.Status), Reason: string(it.dec.Reason),
		Passed: it.dec.Passed, Suggestion: it.raw.Suggestion, Action: action, Reused: !it.verify, Evidence: ev, VerifiedAt: vat,
	}
}

// Fields returns the mf_* write-back values for a failed contact (verification.md "Write-back").
// mf_fixed is "false": autofloss never rewrites an address on the platform, it only suggests
// (mf_suggestion, written when there is one).
func Fields(dec policy.Decision, suggestion, mode string, verifiedAt time.Time) esp.Fields {
	f := esp.Fields{
		esp.FieldPassed:    "false",
		esp.FieldReason:    string(dec.Reason),
		esp.FieldMode:      mode,
		esp.FieldFlossedOn: verifiedAt.UTC().Format("2006-01-02"),
		esp.FieldStatus:    string(dec.Status),
		esp.FieldFixed:     "false",
	}
	if suggestion != "" {
		f[esp.FieldSuggestion] = suggestion
	}
	return f
}

// writeBack applies on_failure to the page's failed, non-whitelisted contacts, a few at a time (the
// account's limiter in the shared client paces them). A contact whose reused result already records the
// same action on the same contact and list is not written again. A contact gone from the platform
// (ErrNotFound) counts as done; a write the platform refuses for this contact alone (ErrBadRequest) is
// recorded as "none" and logged without the address. Anything else aborts the page uncommitted.
func (f *floss) writeBack(ctx context.Context, items []*item) error {
	d := f.r.d
	var todo []*item
	for _, it := range items {
		if it.action == "" || it.action == OnFailureNone {
			continue
		}
		if p := it.prev; p != nil && p.ContactID == it.c.ID && p.ListID == it.c.ListID && p.Action == it.action {
			continue
		}
		todo = append(todo, it)
	}
	if len(todo) == 0 {
		return nil
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, d.Settings.WriteConcurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for _, it := range todo {
		if wctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(it *item) {
			defer func() { <-sem; wg.Done() }()
			err := f.writeOne(wctx, it)
			if err == nil {
				if d.Metrics != nil {
					d.Metrics.writebacks.WithLabelValues(it.action).Inc()
				}
				return
			}
			if errors.Is(err, esp.ErrNotFound) {
				return // gone already: nothing left to do
			}
			if errors.Is(err, esp.ErrBadRequest) {
				f.log.Warn().Str("contact_id", it.c.ID).Str("action", it.action).Err(err).Msg("write-back refused by the platform")
				it.action = OnFailureNone
				return
			}
			once.Do(func() { firstErr = err; cancel(err) })
		}(it)
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func (f *floss) writeOne(ctx context.Context, it *item) error {
	d := f.r.d
	switch it.action {
	case OnFailureUpdateFields, "tag":
		vat := it.raw.VerifiedAt
		if vat.IsZero() {
			vat = d.Now()
		}
		return f.ad.SetFields(ctx, it.c, Fields(it.dec, it.raw.Suggestion, f.set.Policy.Aggressiveness, vat))
	case OnFailureUnsubscribe:
		return f.ad.Unsubscribe(ctx, it.c)
	case OnFailureDelete:
		return f.delete(ctx, it.c)
	}
	return fmt.Errorf("jobs: unknown write-back action %q", it.action)
}

// delete snapshots the contact before the platform deletes it. The Adapter reads and deletes in one call,
// so two snapshots are kept: the contact as read on this page, stored BEFORE the delete is sent (nothing
// is destroyed without a record, even if the worker dies mid-call), then the platform's full record the
// adapter returns. A contact already gone (ErrNotFound) is done.
func (f *floss) delete(ctx context.Context, c esp.Contact) error {
	d := f.r.d
	read, _ := json.Marshal(map[string]any{"source": "read", "id": c.ID, "list_id": c.ListID, "email": c.Email,
		"status": c.Status, "updated_at": c.UpdatedAt})
	if _, err := d.Store.SaveSnapshot(ctx, store.Snapshot{ConnectionID: f.cnx.ID, RunID: f.runID, ContactID: c.ID,
		ListID: c.ListID, Data: read}); err != nil {
		return &RetryableError{Err: err}
	}
	snap, err := f.ad.Delete(ctx, c)
	if err != nil {
		return err
	}
	if len(snap) > 0 {
		if _, err := d.Store.SaveSnapshot(ctx, store.Snapshot{ConnectionID: f.cnx.ID, RunID: f.runID, ContactID: c.ID,
			ListID: c.ListID, Data: snap}); err != nil {
			return &RetryableError{Err: err}
		}
	}
	return nil
}
