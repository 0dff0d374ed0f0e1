// Package verify is the email verification engine: it takes one address (and
// what the sending platform already knows about it) and returns the raw result
// of verification.md — status, reason, list flags, typo suggestion and the
// evidence behind them — from syntax, shipped lists, DNS and an SMTP mailbox
// probe. Whether a contact passes is decided by package policy, not here.
package verify
