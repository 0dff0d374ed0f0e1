package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/verify"
)

// ContactGetter is an optional adapter ability: read one contact by the platform's ids. The Adapter
// interface has no such call; floss:verify_contact uses it when an adapter offers it and otherwise reads
// the contact through Contacts (see VerifyContact).
type ContactGetter interface {
	Contact(ctx context.Context, id, listID string) (esp.Contact, error)
}

// ErrContactNotVisible: the platform does not list the webhook's contact yet (eventual consistency);
// asynq retries a little later.
var ErrContactNotVisible = errors.New("jobs: contact not visible on the platform yet")

// HandleVerifyContact is the floss:verify_contact handler.
func (h *Handlers) HandleVerifyContact(ctx context.Context, t *asynq.Task) error {
	var p VerifyContactPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ConnectionID == "" || p.ContactID == "" {
		return fmt.Errorf("jobs: bad floss:verify_contact payload: %w", asynq.SkipRetry)
	}
	taskID, _ := asynq.GetTaskID(ctx)
	res, outcome, err := h.r.VerifyContact(ctx, p, taskID)
	if rw := t.ResultWriter(); rw != nil {
		b, _ := json.Marshal(map[string]any{"connection_id": p.ConnectionID, "contact_id": p.ContactID, "run_id": res.RunID,
			"status": res.Status, "reason": res.Reason, "action": res.Action, "outcome": outcome})
		_, _ = rw.Write(b)
	}
	return h.settle(ctx, "", err)
}

// VerifyContact verifies one new contact of a verify_first connection (a webhook announced it) and writes
// its verdict back, like a floss run does for a page of one.
//
// Reading the contact: the Adapter interface has no get-one call, and adding one to all 18 adapters is
// the invasive path, so: an adapter implementing ContactGetter is asked directly; on platforms with a
// changed-since filter the contacts changed since the webhook's arrival minus the incremental lookback are
// paged (a new subscriber is among the newest changes; at most Settings.ScanPages pages); a contact not
// there yet is retried (ErrContactNotVisible). On platforms without changed-since (a full read is the only
// way), the contact is handed to a sync run of its connection (opened and enqueued like the scheduler does;
// fresh results are reused there at no cost), so nothing is lost and no full read happens per webhook.
//
// Storing: the result goes into a dedicated mini-run (store.CommitContactResult: a run of kind
// incremental born done, the result, one credit; the connection's last_synced_at is untouched). Its ref
// is the task id plus the webhook's arrival time, so a retried task stores and charges once. A result
// younger than the re-verify window is reused at no cost. With no credits left the contact is left for
// the next run (outcome paused).
func (r *Runner) VerifyContact(ctx context.Context, p VerifyContactPayload, taskID string) (store.Result, Outcome, error) {
	d := r.d
	cnx, err := d.Store.ConnectionByID(ctx, p.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Result{}, OutcomeNothing, nil
	}
	if err != nil {
		return store.Result{}, OutcomeRetry, &RetryableError{Err: err}
	}
	set := parseSettings(cnx.Settings)
	if cnx.Status != store.StatusActive {
		return store.Result{}, OutcomeDisconnected, nil
	}
	if !cnx.VerifyFirst { // the store's mirror of settings.verify_first
		return store.Result{}, OutcomeNothing, nil
	}
	log := d.Log.With().Str("connection_id", cnx.ID).Str("contact_id", p.ContactID).Logger()
	f := &floss{r: r, cnx: cnx, set: set, log: log, want: policy.WantedChecks(set.Policy)}
	fail := func(err error) (store.Result, Outcome, error) {
		if errors.Is(err, esp.ErrCredentialsRejected) {
			if merr := d.Store.MarkCredentialsRevoked(context.WithoutCancel(ctx), cnx.ID); merr != nil && !errors.Is(merr, store.ErrNotFound) {
				return store.Result{}, OutcomeRetry, &RetryableError{Err: merr}
			}
			log.Warn().Msg("platform refused the credentials: connection disconnected (credentials_revoked)")
			return store.Result{}, OutcomeDisconnected, &PermanentError{Err: err}
		}
		var ce *esp.CredentialError
		if errors.As(err, &ce) {
			return store.Result{}, OutcomeFailed, &PermanentError{Err: err}
		}
		re := &RetryableError{Err: err}
		var ee *esp.Error
		if errors.As(err, &ee) && ee.RetryAfter > 0 {
			re.Wait = ee.RetryAfter
		}
		return store.Result{}, OutcomeRetry, re
	}
	ad, err := r.adapter(ctx, cnx)
	if err != nil {
		return fail(err)
	}
	f.ad, f.caps = ad, ad.Capabilities()
	received := time.Unix(p.ReceivedAt, 0)
	if p.ReceivedAt == 0 {
		received = d.Now()
	}
	c, found, err := r.findContact(ctx, ad, p, received)
	if err != nil {
		return fail(err)
	}
	if !found {
		if !f.caps.ChangedSince {
			if d.Enqueuer == nil {
				return store.Result{}, OutcomeNothing, nil
			}
			if _, err := EnqueueRun(ctx, d.Store, d.Enqueuer, cnx, d.Settings.IncrementalLookback, QueueDefault, d.Now(), d.Metrics, "verify_contact"); err != nil {
				return store.Result{}, OutcomeRetry, &RetryableError{Err: err}
			}
			log.Info().Msg("contact handed to a sync run (platform has no changed-since filter)")
			return store.Result{}, OutcomeNothing, nil
		}
		return store.Result{}, OutcomeRetry, &RetryableError{Err: ErrContactNotVisible, Wait: 15 * time.Second}
	}
	if c.Status == esp.StatusUnsubscribed {
		return store.Result{}, OutcomeNothing, nil
	}
	rules, err := d.Store.RulesForConnection(ctx, cnx.ID)
	if err != nil {
		return store.Result{}, OutcomeRetry, &RetryableError{Err: err}
	}
	f.rules = compileRules(rules)
	now := d.Now().UTC()
	it := &item{c: c, dup: -1}
	recent, err := d.Store.RecentResults(ctx, cnx.ID, []string{c.Email}, now.Add(-d.Settings.ReverifyWindow))
	if err != nil {
		return store.Result{}, OutcomeRetry, &RetryableError{Err: err}
	}
	if prev, ok := recent[strings.ToLower(strings.TrimSpace(c.Email))]; ok && d.Settings.ReverifyWindow > 0 {
		it.prev = &prev
		it.raw = rawOf(prev)
	} else {
		bal, err := d.Store.Balance(ctx, cnx.AccountID)
		if err != nil {
			return store.Result{}, OutcomeRetry, &RetryableError{Err: err}
		}
		if bal < 1 {
			log.Info().Msg("no credits: contact left for the next run")
			return store.Result{}, OutcomePaused, nil
		}
		it.verify = true
		it.raw = d.Engine.VerifyBatch(ctx, []verify.Input{{Email: c.Email, PlatformStatus: string(c.Status)}}, f.want)[0]
		if err := ctx.Err(); err != nil {
			return store.Result{}, OutcomeRetry, &RetryableError{Err: err}
		}
	}
	it.include = true
	it.dec = policy.Decide(it.raw, set.Policy, f.rules)
	if it.dec.WriteBack {
		it.action = set.OnFailure
		if it.action == OnFailureUpdateFields && f.caps.Tags {
			it.action = "tag"
		}
	}
	if it.action == OnFailureUpdateFields {
		if err := ad.EnsureFields(ctx); err != nil {
			return fail(err)
		}
	}
	if err := f.writeBack(ctx, []*item{it}); err != nil {
		return fail(err)
	}
	nr := f.result(it, now)
	ref := fmt.Sprintf("%s@%d", taskID, p.ReceivedAt)
	if taskID == "" {
		ref = fmt.Sprintf("verify:%s:%s:%s@%d", p.ConnectionID, p.ListID, p.ContactID, p.ReceivedAt)
	}
	run, charged, err := d.Store.CommitContactResult(ctx, store.ContactResult{ConnectionID: cnx.ID, Ref: ref, TaskID: taskID, Result: nr})
	if errors.Is(err, store.ErrInsufficientCredits) {
		return store.Result{}, OutcomePaused, nil
	}
	if err != nil {
		return store.Result{}, OutcomeRetry, &RetryableError{Err: err}
	}
	if m := d.Metrics; m != nil {
		if charged {
			m.credits.Inc()
		}
		m.contacts.WithLabelValues(nr.Reason, boolLabel(nr.Passed)).Inc()
	}
	res := store.Result{RunID: run.ID, ConnectionID: cnx.ID, ContactID: nr.ContactID, ListID: nr.ListID, Status: nr.Status,
		Reason: nr.Reason, Passed: nr.Passed, Suggestion: nr.Suggestion, Action: nr.Action, Reused: nr.Reused, VerifiedAt: nr.VerifiedAt}
	return res, OutcomeDone, nil
}

// findContact reads the webhook's contact (see VerifyContact).
func (r *Runner) findContact(ctx context.Context, ad esp.Adapter, p VerifyContactPayload, received time.Time) (esp.Contact, bool, error) {
	if g, ok := ad.(ContactGetter); ok {
		c, err := g.Contact(ctx, p.ContactID, p.ListID)
		if errors.Is(err, esp.ErrNotFound) {
			return esp.Contact{}, false, nil
		}
		return c, err == nil, err
	}
	if !ad.Capabilities().ChangedSince {
		return esp.Contact{}, false, nil
	}
	since := received.Add(-r.d.Settings.IncrementalLookback - time.Minute)
	var cursor esp.Cursor
	for n := 0; n < r.d.Settings.ScanPages; n++ {
		page, err := ad.Contacts(ctx, cursor, since)
		if err != nil {
			return esp.Contact{}, false, err
		}
		for _, c := range page.Contacts {
			if c.ID == p.ContactID && (p.ListID == "" || c.ListID == p.ListID) {
				return c, true, nil
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	return esp.Contact{}, false, nil
}
