// Package verify is the email verification engine: it takes one address (and
// what the sending platform already knows about it) and returns the raw result
// of verification.md — status, reason, list flags, typo suggestion and the
// evidence behind them — from syntax, shipped lists, DNS and an SMTP mailbox
// probe. Whether a contact passes is decided by package policy, not here.
//
// Use:
//
//	e, err := verify.New(verify.Options{})         // system resolvers, embedded lists
//	defer e.Close()                                 // ends idle SMTP sessions
//	want := policy.WantedChecks(settings)          // gates that are off skip their work
//	results := e.VerifyBatch(ctx, inputs, want)    // same order as inputs
//
// Order of work per address: syntax; lists (spam trap, role, banned words,
// disposable, free); the platform's own bounced/complained status; typo
// suggestion; provider rules (never-probed providers); DNS (MX, null MX, A/AAAA
// fallback, NS and MX against parking services); SMTP. The engine stops as soon
// as a wanted check has failed the contact (unless NoEarlyStop is set), and the
// reason is the first problem found in the table order of verification.md.
//
// Sharing: one Engine per process. Its DNS cache (positive/negative TTLs,
// single-flight per domain), catch-all cache and SMTP session pool (per MX
// host, capped, sessions shared by every domain an exchanger serves and kept
// IdleTimeout for the next batch) are what make large runs cheap. When an
// exchanger advertises PIPELINING (RFC 2920), a session's RCPTs go in groups
// (one write, replies read in order), which the outcomes cannot tell from
// lock-step probing; Options.NoPipelining turns it off.
//
// Privacy: errors, logs and evidence never contain addresses (SMTP reply texts
// have the probed address replaced by "<address>").
package verify
