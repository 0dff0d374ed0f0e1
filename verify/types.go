package verify

import (
	"time"
)

// Status is the closed set of result statuses.
type Status string

// The four statuses of verification.md.
const (
	StatusPassed        Status = "passed"
	StatusUndeliverable Status = "undeliverable"
	StatusRisky         Status = "risky"
	StatusUnknown       Status = "unknown"
)

// Reason names why a result is what it is. The order of Reasons() is the
// precedence of verification.md: the first reason whose check found a problem wins.
type Reason string

// Every reason of verification.md, in table order.
const (
	ReasonValid          Reason = "valid"
	ReasonInvalid        Reason = "invalid"
	ReasonIllegitimate   Reason = "illegitimate"
	ReasonNonexistent    Reason = "nonexistent"
	ReasonInboxFull      Reason = "inbox_full"
	ReasonDeactivated    Reason = "deactivated"
	ReasonSpam           Reason = "spam"
	ReasonRole           Reason = "role"
	ReasonBanned         Reason = "banned"
	ReasonAvailable      Reason = "available"
	ReasonComplainer     Reason = "complainer"
	ReasonBounced        Reason = "bounced"
	ReasonDisposable     Reason = "disposable"
	ReasonBlacklisted    Reason = "blacklisted"
	ReasonAcceptAll      Reason = "accept_all"
	ReasonUnverified     Reason = "unverified"
	ReasonFailedExchange Reason = "failed_exchange"
)

var reasonOrder = []Reason{
	ReasonValid, ReasonInvalid, ReasonIllegitimate, ReasonNonexistent, ReasonInboxFull,
	ReasonDeactivated, ReasonSpam, ReasonRole, ReasonBanned, ReasonAvailable, ReasonComplainer,
	ReasonBounced, ReasonDisposable, ReasonBlacklisted, ReasonAcceptAll, ReasonUnverified,
	ReasonFailedExchange,
}

var reasonRank = func() map[Reason]int {
	m := make(map[Reason]int, len(reasonOrder))
	for i, r := range reasonOrder {
		m[r] = i
	}
	return m
}()

// Reasons returns every reason in precedence (table) order, starting with valid.
func Reasons() []Reason { return append([]Reason(nil), reasonOrder...) }

// Valid reports whether r is one of the known reasons.
func (r Reason) Valid() bool { _, ok := reasonRank[r]; return ok }

// Precedes reports whether r comes before o in the table of verification.md
// (so r wins when both were found). valid precedes nothing.
func (r Reason) Precedes(o Reason) bool {
	if r == ReasonValid {
		return false
	}
	if o == ReasonValid {
		return true
	}
	return rank(r) < rank(o)
}

// rank is reasonRank[r] as a switch (0 for an unknown reason, as the map gives).
func rank(r Reason) int {
	switch r {
	case ReasonValid:
		return 0
	case ReasonInvalid:
		return 1
	case ReasonIllegitimate:
		return 2
	case ReasonNonexistent:
		return 3
	case ReasonInboxFull:
		return 4
	case ReasonDeactivated:
		return 5
	case ReasonSpam:
		return 6
	case ReasonRole:
		return 7
	case ReasonBanned:
		return 8
	case ReasonAvailable:
		return 9
	case ReasonComplainer:
		return 10
	case ReasonBounced:
		return 11
	case ReasonDisposable:
		return 12
	case ReasonBlacklisted:
		return 13
	case ReasonAcceptAll:
		return 14
	case ReasonUnverified:
		return 15
	case ReasonFailedExchange:
		return 16
	}
	return 0
}

// Status returns the status that verification.md attaches to the reason.
func (r Reason) Status() Status {
	switch r {
	case ReasonValid:
		return StatusPassed
	case ReasonInvalid, ReasonIllegitimate, ReasonNonexistent, ReasonInboxFull, ReasonDeactivated:
		return StatusUndeliverable
	case ReasonAcceptAll, ReasonUnverified, ReasonFailedExchange:
		return StatusUnknown
	default:
		return StatusRisky
	}
}

// Platform statuses a caller may pass in Input.PlatformStatus.
const (
	PlatformSubscribed   = "subscribed"
	PlatformUnsubscribed = "unsubscribed"
	PlatformBounced      = "bounced"
	PlatformComplained   = "complained"
)

// Input is one address to verify plus the platform's own status for it.
type Input struct {
	Email          string
	PlatformStatus string // "subscribed" | "unsubscribed" | "bounced" | "complained" | ""
}

// Checks is the set of checks a caller wants, one bit per gated reason
// (the gate names of verification.md equal their reasons). A check that is not
// wanted is not run where that saves work (no role lookup, no SMTP probe, …);
// when a wanted check finds a problem the engine stops early, since the contact
// has failed anyway. Syntax always runs; free-mail and typo suggestion are
// informational and always run.
type Checks uint32

// gatedReasons are the fifteen reasons that have a gate, in table order; the
// index is the reason's bit in Checks.
var gatedReasons = [...]Reason{ReasonInvalid, ReasonIllegitimate, ReasonNonexistent, ReasonInboxFull,
	ReasonDeactivated, ReasonSpam, ReasonRole, ReasonBanned, ReasonAvailable, ReasonComplainer,
	ReasonBounced, ReasonDisposable, ReasonAcceptAll, ReasonUnverified, ReasonFailedExchange}

var checkBits = func() map[Reason]Checks {
	m := make(map[Reason]Checks, len(gatedReasons))
	for i, r := range gatedReasons {
		m[r] = 1 << uint(i)
	}
	return m
}()

// GatedReasons returns the fifteen reasons that have a gate, in table order.
func GatedReasons() []Reason { return append([]Reason(nil), gatedReasons[:]...) }

// NoEarlyStop asks the engine to run every wanted check even after one failed
// (used when the full picture matters more than the saved work).
const NoEarlyStop Checks = 1 << 31

// AllChecks wants every check (the aggressive preset).
const AllChecks Checks = (1 << 15) - 1

// CheckOf returns the bit for a gated reason (0 for valid/blacklisted/unknown).
func CheckOf(r Reason) Checks { return checkBit(r) }

// checkBit is checkBits[r] as a switch (no hashing on the per-address path).
func checkBit(r Reason) Checks {
	switch r {
	case ReasonInvalid:
		return 1 << 0
	case ReasonIllegitimate:
		return 1 << 1
	case ReasonNonexistent:
		return 1 << 2
	case ReasonInboxFull:
		return 1 << 3
	case ReasonDeactivated:
		return 1 << 4
	case ReasonSpam:
		return 1 << 5
	case ReasonRole:
		return 1 << 6
	case ReasonBanned:
		return 1 << 7
	case ReasonAvailable:
		return 1 << 8
	case ReasonComplainer:
		return 1 << 9
	case ReasonBounced:
		return 1 << 10
	case ReasonDisposable:
		return 1 << 11
	case ReasonAcceptAll:
		return 1 << 12
	case ReasonUnverified:
		return 1 << 13
	case ReasonFailedExchange:
		return 1 << 14
	}
	return 0
}

// ChecksOf builds a set from reasons.
func ChecksOf(rs ...Reason) Checks {
	var c Checks
	for _, r := range rs {
		c |= checkBit(r)
	}
	return c
}

// Has reports whether the check for reason r is wanted.
func (c Checks) Has(r Reason) bool { return c&checkBit(r) != 0 }

// With returns c plus the checks for rs.
func (c Checks) With(rs ...Reason) Checks { return c | ChecksOf(rs...) }

// Without returns c minus the checks for rs.
func (c Checks) Without(rs ...Reason) Checks { return c &^ ChecksOf(rs...) }

// WantsSMTP reports whether any SMTP-based check is wanted; when none is, the
// engine never opens an SMTP connection. unverified counts: it is what a probe
// that only met temporary errors reports.
func (c Checks) WantsSMTP() bool { return c&smtpChecks != 0 }

var smtpChecks = ChecksOf(ReasonNonexistent, ReasonInboxFull, ReasonDeactivated, ReasonAcceptAll,
	ReasonUnverified, ReasonFailedExchange)

// WantsDNS reports whether any DNS-based check is wanted.
func (c Checks) WantsDNS() bool {
	return c.Has(ReasonIllegitimate) || c.Has(ReasonAvailable) || c.WantsSMTP()
}

// Evidence is what the engine saw, so a user can tell why a result is what it is.
type Evidence struct {
	Ran          []string      `json:"ran,omitempty"`         // checks that ran, in order
	Lists        []string      `json:"lists,omitempty"`       // shipped lists that matched (disposable, role, free, …)
	MX           []string      `json:"mx,omitempty"`          // MX hosts in preference order
	NullMX       bool          `json:"null_mx,omitempty"`     // RFC 7505 null MX
	ImplicitMX   bool          `json:"implicit_mx,omitempty"` // no MX, the A/AAAA fallback was used
	NS           []string      `json:"ns,omitempty"`          // name servers (parking check)
	DNSError     string        `json:"dns_error,omitempty"`   // nxdomain, servfail, timeout, …
	DNSCached    bool          `json:"dns_cached,omitempty"`  // the DNS answer came from the cache
	Provider     string        `json:"provider,omitempty"`    // provider rule that replaced the probe
	MXHost       string        `json:"mx_host,omitempty"`     // the exchanger that answered the probe
	SMTPCode     int           `json:"smtp_code,omitempty"`   // reply code to RCPT (or the failing step)
	SMTPText     string        `json:"smtp_text,omitempty"`   // reply text (the address is never echoed back)
	SMTPStep     string        `json:"smtp_step,omitempty"`   // the step that decided: connect, greeting, helo, mail, rcpt
	SMTPError    string        `json:"smtp_error,omitempty"`  // network error class, if any
	CatchAll     *bool         `json:"catch_all,omitempty"`   // result of the catch-all probe, if made
	DNSDuration  time.Duration `json:"dns_duration_ns,omitempty"`
	SMTPDuration time.Duration `json:"smtp_duration_ns,omitempty"`
	Duration     time.Duration `json:"duration_ns"`
}

// Result is the raw verification result of one address (verification.md).
type Result struct {
	Email      string    `json:"email"` // normalised: trimmed, domain lower-cased and in A-label form
	Domain     string    `json:"domain"`
	Status     Status    `json:"status"`
	Reason     Reason    `json:"reason"`
	Role       bool      `json:"role"`
	Disposable bool      `json:"disposable"`
	Free       bool      `json:"free"`
	Suggestion string    `json:"suggestion,omitempty"`
	Evidence   Evidence  `json:"checks"`
	VerifiedAt time.Time `json:"verified_at"`
}
