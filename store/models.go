package store

import (
	"encoding/json"
	"time"
)

// Connection statuses and disconnect reasons.
const (
	StatusActive       = "active"
	StatusDisconnected = "disconnected"

	ReasonUser               = "user"
	ReasonCredentialsRevoked = "credentials_revoked"
)

// Keyword rule lists and match targets.
const (
	Whitelist = "whitelist"
	Blacklist = "blacklist"

	MatchLocalPart = "local_part"
	MatchDomain    = "domain"
	MatchEmail     = "email"
)

// Run kinds and states.
const (
	RunFull        = "full"
	RunIncremental = "incremental"

	RunQueued          = "queued"
	RunRunning         = "running"
	RunDone            = "done"
	RunFailed          = "failed"
	RunPausedNoCredits = "paused_no_credits"
)

// Account is a customer.
type Account struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// APIKey is an account's key; only its SHA-256 hash is stored, Prefix is kept for display.
type APIKey struct {
	ID        string
	AccountID string
	Prefix    string // "mf_live_AbCd" — enough to recognise, useless to authenticate
	CreatedAt time.Time
	RevokedAt *time.Time
}

// LedgerEntry is one change to an account's credit balance.
type LedgerEntry struct {
	Delta        int64 // positive: added; negative: spent
	BalanceAfter int64
	Ref          string // unique: the same ref is never applied twice
	Reason       string // "grant", "floss", …
	RunID        string // for debits
	CreatedAt    time.Time
}

// Credentials are a connection's platform credentials (field name → value). They exist in plaintext only
// in memory: the store seals them before writing.
type Credentials map[string]string

// Connection is one connected ESP account. Credentials are not part of it (see ConnectionCredentials).
type Connection struct {
	ID                 string
	AccountID          string
	Type               string // platform slug
	Name               string
	Status             string // StatusActive | StatusDisconnected
	DisconnectedReason string // "" when active; ReasonUser | ReasonCredentialsRevoked
	AutoFlossEnabled   bool
	// VerifyFirst mirrors settings.verify_first (the store reads it from Settings on every write) so the
	// scheduler can select on it.
	VerifyFirst   bool
	Settings      json.RawMessage // owned by the API/policy; stored byte for byte
	KeyID         string          // id of the key that sealed the credentials
	WebhookSecret string          // the {secret} of the verify_first webhook URL
	LastSyncedAt  *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// ConnectionCount is how many connections of one type an account has.
type ConnectionCount struct {
	Total  int
	Active int
}

// Rule is a keyword rule of a connection's whitelist or blacklist.
type Rule struct {
	ID           string
	ConnectionID string
	List         string // Whitelist | Blacklist
	Keyword      string // as given (trimmed by the caller); unique per list and match_on case-insensitively
	MatchOn      string // MatchLocalPart | MatchDomain | MatchEmail
	CreatedAt    time.Time
}

// RunError is why a run failed.
type RunError struct {
	Code    string
	Message string
}

// Run is one floss run of a connection.
type Run struct {
	ID           string
	ConnectionID string
	Kind         string // RunFull | RunIncremental
	State        string
	TaskID       string
	Cursor       string     // checkpoint: the platform cursor of the next page to read
	AtEnd        bool       // the last page is committed; only FinishRun remains
	Since        *time.Time // incremental runs read contacts changed at or after this
	Pages        int64
	Counts       RunCounts
	ByReason     map[string]int64
	CreditsUsed  int64
	Total        *int64 // contacts in the whole read, where the platform tells it
	Error        *RunError
	CreatedAt    time.Time
	StartedAt    *time.Time
	FinishedAt   *time.Time
	UpdatedAt    time.Time
}

// RunCounts are a run's counters (api.md "Runs").
type RunCounts struct {
	Seen        int64
	Skipped     int64
	Reused      int64
	Verified    int64
	Passed      int64
	Failed      int64
	WrittenBack int64
}

// Progress is seen/total in 0..1 when the total is known, else nil.
func (r Run) Progress() *float64 {
	if r.State == RunDone {
		p := 1.0
		return &p
	}
	if r.Total == nil || *r.Total <= 0 {
		return nil
	}
	p := float64(r.Counts.Seen) / float64(*r.Total)
	if p > 1 {
		p = 1
	}
	return &p
}

// Result is the verdict for one contact in one run.
type Result struct {
	RunID        string
	ConnectionID string
	ContactID    string
	ListID       string
	Email        string
	Status       string // passed | undeliverable | risky | unknown
	Reason       string
	Passed       bool
	Suggestion   string
	Action       string          // write-back done: "" or "none" = nothing; update_fields | unsubscribe | delete | tag
	Reused       bool            // taken from a result inside the re-verify window: no credit
	Evidence     json.RawMessage // why (MX, SMTP code, lists matched, durations)
	VerifiedAt   time.Time
}

// Snapshot is a contact as the platform returned it, kept before deleting it there.
type Snapshot struct {
	ID           string
	ConnectionID string
	RunID        string
	ContactID    string
	ListID       string
	Data         json.RawMessage
	CreatedAt    time.Time
}

// Idempotency states.
const (
	IdemInFlight = "in_flight"
	IdemDone     = "done"
)

// IdempotencyRecord is the stored outcome of one (account, Idempotency-Key).
type IdempotencyRecord struct {
	AccountID   string
	Key         string
	RequestHash string
	State       string // IdemInFlight | IdemDone
	Status      int    // HTTP status, when done
	Body        []byte // response body, when done
	CreatedAt   time.Time
	ExpiresAt   time.Time
}
