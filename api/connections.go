package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/hibiken/asynq"

	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/verify"
)

// GET /v1/integrations/{type}/connections/{id}
func (s *server) getConnection(w http.ResponseWriter, r *http.Request) {
	c, _, err := s.connection(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, renderConnection(c))
}

// PATCH /v1/integrations/{type}/connections/{id} — api.md "Configure (PATCH)":
//   - an empty body or {} → 400 no_fields; an unknown field → 400 unknown_field naming it;
//   - aggressiveness with checks → 400 aggressiveness_checks_exclusive;
//   - checks switches aggressiveness to custom and changes only the named gates (the others keep their
//     current effective value); an unknown gate or a non-bool → 400 naming checks.<gate>;
//   - aggressiveness normal|aggressive resets every gate to the preset; custom alone keeps the gates.
//
// Nothing is written unless the whole request is valid.
func (s *server) patchConnection(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r.Context())
	c, _, err := s.connection(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	empty, err := checkBody(st.body, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var top map[string]json.RawMessage
	if !empty {
		_ = json.Unmarshal(st.body, &top)
	}
	allowed := map[string]bool{"name": true, "verify_first": true, "aggressiveness": true, "checks": true,
		"auto_floss_enabled": true, "on_failure": true}
	for _, k := range sortedKeys(top) {
		if !allowed[k] {
			s.fail(w, r, unknownField("", k))
			return
		}
	}
	if len(top) == 0 {
		s.fail(w, r, invalid("no_fields", "", "send at least one field to change"))
		return
	}
	_, hasAggr := top["aggressiveness"]
	_, hasChecks := top["checks"]
	if hasAggr && hasChecks {
		s.fail(w, r, invalid("aggressiveness_checks_exclusive", "checks",
			"aggressiveness and checks are mutually exclusive: send one or the other"))
		return
	}
	set := parseSettings(c.Settings)
	var u store.ConnectionUpdate
	for _, k := range sortedKeys(top) {
		raw := top[k]
		switch k {
		case "name":
			v, err := rawString(raw, k)
			if err == nil {
				v, err = checkName(v)
			}
			if err != nil {
				s.fail(w, r, err)
				return
			}
			u.Name = &v
		case "auto_floss_enabled":
			v, err := rawBool(raw, k)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			u.AutoFlossEnabled = &v
		case "verify_first":
			v, err := rawBool(raw, k)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			set.VerifyFirst = v
		case "on_failure":
			v, err := rawString(raw, k)
			if err == nil && !isOnFailure(v) {
				err = invalid("invalid_field", k, "on_failure must be one of update_fields, unsubscribe, delete, none")
			}
			if err != nil {
				s.fail(w, r, err)
				return
			}
			set.OnFailure = v
		case "aggressiveness":
			v, err := rawString(raw, k)
			if err == nil && !policy.IsPreset(v) {
				err = invalid("invalid_field", k, "aggressiveness must be one of normal, aggressive, custom")
			}
			if err != nil {
				s.fail(w, r, err)
				return
			}
			set.Aggressiveness = v
			if v != policy.PresetCustom {
				set.Checks = policy.Preset(v)
			}
		case "checks":
			members, err := rawObject(raw, k)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			for _, g := range sortedKeys(members) {
				field := "checks." + g
				if !policy.IsGate(g) {
					s.fail(w, r, invalid("unknown_field", field, field+" is not a gate"))
					return
				}
				on, err := rawBool(members[g], field)
				if err != nil {
					s.fail(w, r, err)
					return
				}
				set.Checks[g] = on
			}
			set.Aggressiveness = policy.PresetCustom
		}
	}
	u.Settings = set.raw()
	c, err = s.st.UpdateConnection(r.Context(), st.accountID, c.ID, u)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = errConnectionNotFound
		}
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, renderConnection(c))
}

// DELETE /v1/integrations/{type}/connections/{id} — status disconnected (reason user); the record, its
// settings, rules, runs and results stay. On a connection that is already disconnected (by the user or
// because its credentials were revoked) it changes nothing.
func (s *server) deleteConnection(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r.Context())
	c, _, err := s.connection(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if c.Status != store.StatusDisconnected {
		status, reason := store.StatusDisconnected, store.ReasonUser
		if c, err = s.st.UpdateConnection(r.Context(), st.accountID, c.ID, store.ConnectionUpdate{Status: &status, DisconnectedReason: &reason}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, renderConnection(c))
}

type syncJSON struct {
	RunID  string `json:"run_id"`
	TaskID string `json:"task_id"`
}

// POST /v1/integrations/{type}/connections/{id}/sync — opens a run (or returns the connection's unfinished
// one: never two at once) and enqueues floss:sync for it on the default queue. The task id is the run's
// (jobs.NewSyncTask), so enqueueing an already enqueued run is a no-op; a run that another component
// enqueued (the scheduler) is returned with its own task id. A disconnected connection is 409
// connection_disconnected. Redis being down is 503 queue_unavailable (the queued run is enqueued by the
// next call). A run paused for lack of credits is returned as is when its task id is still held by asynq
// (retention); the scheduler resumes such runs once credits are added.
func (s *server) sync(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r.Context())
	c, _, err := s.connection(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if empty, err := checkBody(st.body, false); err != nil {
		s.fail(w, r, err)
		return
	} else if !empty {
		if err := decodeStrict(st.body, &struct{}{}, ""); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if c.Status != store.StatusActive {
		s.fail(w, r, errf(http.StatusConflict, typeConflict, "connection_disconnected",
			"the connection is disconnected; reconnect it before syncing"))
		return
	}
	nr := store.NewRun{ConnectionID: c.ID, Kind: store.RunFull}
	if _, err := s.st.LastCompletedRun(r.Context(), c.ID); err == nil && c.LastSyncedAt != nil {
		since := c.LastSyncedAt.Add(-s.d.Settings.IncrementalLookback)
		nr.Kind, nr.Since = store.RunIncremental, &since
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, err)
		return
	}
	run, created, err := s.st.OpenOrCreateRun(r.Context(), nr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !created && run.TaskID != "" && run.State != store.RunPausedNoCredits {
		writeJSON(w, http.StatusAccepted, syncJSON{RunID: run.ID, TaskID: run.TaskID})
		return
	}
	task, err := jobs.NewSyncTask(jobs.SyncPayload{ConnectionID: c.ID, RunID: run.ID}, jobs.QueueDefault)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	taskID := "sync:" + c.ID + ":" + run.ID // jobs.NewSyncTask's TaskID
	info, err := s.d.Enqueuer.EnqueueContext(r.Context(), task)
	switch {
	case err == nil:
		taskID = info.ID
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		// already enqueued (a retry, or a concurrent call): the same task
	default:
		s.log.Error().Str("request_id", st.requestID).Str("connection_id", c.ID).Str("run_id", run.ID).Err(err).Msg("enqueue floss:sync")
		s.fail(w, r, errf(http.StatusServiceUnavailable, typeAPI, "queue_unavailable", "the task queue is unavailable; retry later"))
		return
	}
	writeJSON(w, http.StatusAccepted, syncJSON{RunID: run.ID, TaskID: taskID})
}

// GET /v1/integrations/{type}/connections/{id}/runs
func (s *server) listRuns(w http.ResponseWriter, r *http.Request) {
	c, _, err := s.connection(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pg, err := pageParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	runs, next, err := s.st.ListRuns(r.Context(), c.AccountID, c.ID, pg)
	if err != nil {
		s.fail(w, r, cursorError(err))
		return
	}
	out := make([]runJSON, 0, len(runs))
	for _, run := range runs {
		out = append(out, renderRun(run))
	}
	writeJSON(w, http.StatusOK, newPage(out, next))
}

var resultStatuses = map[string]bool{"passed": true, "undeliverable": true, "risky": true, "unknown": true}

// GET /v1/integrations/{type}/connections/{id}/results?status=&reason=&run_id=
func (s *server) listResults(w http.ResponseWriter, r *http.Request) {
	c, _, err := s.connection(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pg, err := pageParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	f := store.ResultFilter{Status: q.Get("status"), Reason: q.Get("reason"), RunID: q.Get("run_id")}
	if f.Status != "" && !resultStatuses[f.Status] {
		s.fail(w, r, invalid("invalid_field", "status", "status must be one of passed, undeliverable, risky, unknown"))
		return
	}
	if f.Reason != "" && !verify.Reason(f.Reason).Valid() {
		s.fail(w, r, invalid("invalid_field", "reason", "reason is not a verification reason"))
		return
	}
	res, next, err := s.st.ListResults(r.Context(), c.AccountID, c.ID, f, pg)
	if err != nil {
		s.fail(w, r, cursorError(err))
		return
	}
	out := make([]resultJSON, 0, len(res))
	for _, x := range res {
		out = append(out, renderResult(x))
	}
	writeJSON(w, http.StatusOK, newPage(out, next))
}
