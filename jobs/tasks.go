// Package jobs defines the background work of autofloss: the asynq task types, their payloads (ids only:
// never an address or a credential), constructors carrying their enqueue options, and the handlers the
// worker registers.
package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Task type names.
const (
	TypeSync          = "floss:sync"           // one floss run of one connection
	TypeVerifyContact = "floss:verify_contact" // one new contact of a verify_first connection
)

// Queue names, in priority order.
const (
	QueueCritical = "critical" // verify_contact: a new subscriber waits on it
	QueueDefault  = "default"  // manual syncs
	QueueLow      = "low"      // scheduled syncs
)

// SyncPayload names the connection to floss, and the run to continue when one was opened by the caller.
type SyncPayload struct {
	ConnectionID string `json:"connection_id"`
	RunID        string `json:"run_id,omitempty"`
}

// VerifyContactPayload names one contact of one connection by the platform's ids (never its address).
type VerifyContactPayload struct {
	ConnectionID string `json:"connection_id"`
	ContactID    string `json:"contact_id"`
	ListID       string `json:"list_id,omitempty"`
	// ReceivedAt is when the webhook arrived (unix seconds): where the worker starts looking for the contact
	// among the platform's recent changes, and part of the idempotency ref of its result.
	ReceivedAt int64 `json:"received_at,omitempty"`
}

// Sync-task defaults. A run checkpoints after every page, so a retry resumes where the last one stopped.
const (
	syncMaxRetry   = 25
	syncTimeout    = 6 * time.Hour
	syncRetention  = 24 * time.Hour
	verifyMaxRetry = 10
	verifyTimeout  = 2 * time.Minute
	verifyRetain   = 24 * time.Hour
)

// NewSyncTask builds the task of a manual run (the API's POST …/sync): its TaskID is the run's id, so
// enqueueing the same run twice is refused by asynq (asynq.ErrTaskIDConflict).
func NewSyncTask(p SyncPayload, queue string) (*asynq.Task, error) {
	return newSync(p, queue, "sync:"+p.ConnectionID+":"+p.RunID)
}

// NewScheduledSyncTask builds the task of a scheduled run. The scheduler opens (or finds) the run first,
// so the task names it; its TaskID is the connection, the run and, for a run resumed after a pause or
// found stale, the scheduling window: scheduler replicas ticking together enqueue it once, and even a
// duplicate task is harmless (it names the same run, which only one worker at a time can hold).
func NewScheduledSyncTask(connectionID, runID string, window time.Time, resume bool) (*asynq.Task, error) {
	id := "sync:" + connectionID + ":" + runID
	if resume {
		id = fmt.Sprintf("%s:%d", id, window.Unix())
	}
	return newSync(SyncPayload{ConnectionID: connectionID, RunID: runID}, QueueLow, id)
}

func newSync(p SyncPayload, queue, taskID string) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeSync, b,
		asynq.TaskID(taskID), asynq.Queue(queue), asynq.MaxRetry(syncMaxRetry),
		asynq.Timeout(syncTimeout), asynq.Retention(syncRetention)), nil
}

// NewVerifyContactTask builds the task for one new contact; TaskID per connection and contact.
func NewVerifyContactTask(p VerifyContactPayload) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeVerifyContact, b,
		asynq.TaskID("verify:"+p.ConnectionID+":"+p.ListID+":"+p.ContactID), asynq.Queue(QueueCritical),
		asynq.MaxRetry(verifyMaxRetry), asynq.Timeout(verifyTimeout), asynq.Retention(verifyRetain)), nil
}
