// Package esp talks to email platforms: the Adapter interface the worker and the API use, the registry of
// the 18 platforms, the shared HTTP client (rate limit, throttle parsing, retries) and one adapter file per
// platform. Fakes of every platform live in esp/esptest.
package esp

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Status is a contact's subscription state as the platform reports it, normalised.
type Status string

const (
	StatusSubscribed   Status = "subscribed"
	StatusUnsubscribed Status = "unsubscribed"
	StatusBounced      Status = "bounced"
	StatusComplained   Status = "complained"
)

// Contact is one contact as read from the platform: once per list it is in. ID and ListID together find it
// again for a write-back.
type Contact struct {
	ID        string    // the platform's id (the email itself where the platform has none)
	ListID    string    // the list/audience it was read from; "" where the platform pages without lists
	Email     string    // as the platform stores it
	Status    Status    // normalised platform status
	UpdatedAt time.Time // the platform's last-changed time; zero when unknown
}

// Cursor is an opaque resume point. "" means "from the start" when passed in and "no more pages" when returned.
type Cursor string

// Page is one page of contacts plus the cursor of the page after it.
type Page struct {
	Contacts []Contact
	Next     Cursor // "" when this was the last page
	Total    int    // contacts in the whole read where the platform tells it, else -1
}

// List is one list/audience/group/campaign of the account.
type List struct {
	ID   string
	Name string
}

// Fields are the mf_* write-back values keyed by their canonical names (mf_reason, mf_status, …); each
// adapter maps them to what its platform allows (upper-case merge tags, attributes, properties).
type Fields map[string]string

// Adapter is everything the service does with one connected platform account. Every method waits on the
// network and honours ctx. Errors wrap one of the sentinel errors below where one applies.
type Adapter interface {
	// Lists validates the credentials by listing the account's lists.
	Lists(ctx context.Context) ([]List, error)
	// Contacts reads the page at cursor. A zero since reads everything; a non-zero since reads only contacts
	// changed at or after it, where Capabilities().ChangedSince is true (otherwise since is ignored and the
	// caller does a full rescan).
	Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error)
	// Capabilities tells what the platform can do.
	Capabilities() Capabilities
	// EnsureFields creates the mf_* fields (or, on tag platforms, nothing until a tag is needed) when missing.
	EnsureFields(ctx context.Context) error
	// SetFields writes the mf_* fields on the contact (tag platforms write the `mf_failed - <reason>` tag).
	SetFields(ctx context.Context, c Contact, f Fields) error
	// AddTag adds a tag (creating it when missing); platforms without tags store it as a field.
	AddTag(ctx context.Context, c Contact, tag string) error
	// Unsubscribe opts the contact out with the platform's own mechanism.
	Unsubscribe(ctx context.Context, c Contact) error
	// Delete returns the contact as the platform had it, then deletes (or archives) it. Deleting a contact
	// that is already gone returns ErrNotFound wrapped, with a nil snapshot; callers count it as done.
	Delete(ctx context.Context, c Contact) (snapshot json.RawMessage, err error)
}

// Capabilities describe one platform's reading and writing abilities.
type Capabilities struct {
	ChangedSince bool // Contacts honours since
	Tags         bool // write-back uses tags (`mf_failed - <reason>`) instead of fields
	TotalKnown   bool // Page.Total is filled
	// NoDelete: the platform cannot delete a contact; Delete snapshots it and unsubscribes it instead.
	NoDelete bool
}

// Errors callers branch on (errors.Is).
var (
	ErrCredentialsRejected = errors.New("esp: credentials rejected")
	ErrThrottled           = errors.New("esp: throttled")
	ErrUnavailable         = errors.New("esp: platform unavailable")
	ErrNotFound            = errors.New("esp: not found")
)
