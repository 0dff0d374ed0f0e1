// Package policy turns a raw verification result into the decision for one
// contact: gates and presets (which reasons fail a contact), keyword rules
// (whitelist/blacklist) and whether the verdict may be written back.
package policy

import (
	"fmt"
	"strings"

	"github.com/autofloss/autofloss/verify"
)

// Gate is the name of a check that can be switched on or off per connection.
// Gate names equal the reasons they gate.
type Gate string

// The fifteen gates of verification.md, in table order.
const (
	GateInvalid        Gate = Gate(verify.ReasonInvalid)
	GateIllegitimate   Gate = Gate(verify.ReasonIllegitimate)
	GateNonexistent    Gate = Gate(verify.ReasonNonexistent)
	GateInboxFull      Gate = Gate(verify.ReasonInboxFull)
	GateDeactivated    Gate = Gate(verify.ReasonDeactivated)
	GateSpam           Gate = Gate(verify.ReasonSpam)
	GateRole           Gate = Gate(verify.ReasonRole)
	GateBanned         Gate = Gate(verify.ReasonBanned)
	GateAvailable      Gate = Gate(verify.ReasonAvailable)
	GateComplainer     Gate = Gate(verify.ReasonComplainer)
	GateBounced        Gate = Gate(verify.ReasonBounced)
	GateDisposable     Gate = Gate(verify.ReasonDisposable)
	GateAcceptAll      Gate = Gate(verify.ReasonAcceptAll)
	GateUnverified     Gate = Gate(verify.ReasonUnverified)
	GateFailedExchange Gate = Gate(verify.ReasonFailedExchange)
)

var gateOrder = []string{
	string(GateInvalid), string(GateIllegitimate), string(GateNonexistent), string(GateInboxFull),
	string(GateDeactivated), string(GateSpam), string(GateRole), string(GateBanned), string(GateAvailable),
	string(GateComplainer), string(GateBounced), string(GateDisposable), string(GateAcceptAll),
	string(GateUnverified), string(GateFailedExchange),
}

// Gates returns the fifteen gate names in table order (a fresh slice).
func Gates() []string { return append([]string(nil), gateOrder...) }

// IsGate reports whether name is one of the fifteen gates.
func IsGate(name string) bool {
	for _, g := range gateOrder {
		if g == name {
			return true
		}
	}
	return false
}

// Aggressiveness presets.
const (
	PresetNormal     = "normal"
	PresetAggressive = "aggressive"
	PresetCustom     = "custom"
)

// IsPreset reports whether s is normal, aggressive or custom.
func IsPreset(s string) bool { return s == PresetNormal || s == PresetAggressive || s == PresetCustom }

var normalOn = map[string]bool{
	string(GateInvalid): true, string(GateIllegitimate): true, string(GateNonexistent): true,
	string(GateDeactivated): true, string(GateSpam): true, string(GateBanned): true,
	string(GateComplainer): true, string(GateBounced): true, string(GateDisposable): true,
}

// Preset returns the full gate map of a preset (every gate named, true or
// false): normal or aggressive. For custom or an unknown name it returns nil,
// because custom is whatever the connection's checks say.
func Preset(name string) map[string]bool {
	switch name {
	case PresetNormal:
		m := make(map[string]bool, len(gateOrder))
		for _, g := range gateOrder {
			m[g] = normalOn[g]
		}
		return m
	case PresetAggressive:
		m := make(map[string]bool, len(gateOrder))
		for _, g := range gateOrder {
			m[g] = true
		}
		return m
	}
	return nil
}

// Settings are the parts of a connection's settings that decide a contact.
type Settings struct {
	Aggressiveness string          // normal | aggressive | custom ("" = normal)
	Checks         map[string]bool // used when Aggressiveness is custom; a missing gate is off
}

// EffectiveGates returns the gates that are on for s: the preset's for normal
// and aggressive (whatever Checks says), Checks for custom.
func EffectiveGates(s Settings) map[string]bool {
	switch s.Aggressiveness {
	case PresetAggressive:
		return Preset(PresetAggressive)
	case PresetCustom:
		m := make(map[string]bool, len(gateOrder))
		for _, g := range gateOrder {
			m[g] = s.Checks[g]
		}
		return m
	default:
		return Preset(PresetNormal)
	}
}

// ValidateChecks checks a (possibly partial) gate map from a client: every key
// must be a gate. It returns an error naming the first unknown key.
func ValidateChecks(m map[string]bool) error {
	for k := range m {
		if !IsGate(k) {
			return fmt.Errorf("checks.%s: unknown gate", k)
		}
	}
	return nil
}

// WantedChecks converts settings to the engine's check set: exactly the gates
// that are on, so gates that are off skip their work.
func WantedChecks(s Settings) verify.Checks {
	var c verify.Checks
	for g, on := range EffectiveGates(s) {
		if on {
			c = c.With(verify.Reason(g))
		}
	}
	return c
}

// Decision is the verdict for one contact.
type Decision struct {
	Passed      bool          `json:"passed"`
	Reason      verify.Reason `json:"reason"`
	Status      verify.Status `json:"status"`
	WriteBack   bool          `json:"write_back"` // the contact failed and is not whitelisted: on_failure may act
	Whitelisted bool          `json:"whitelisted"`
	Blacklisted bool          `json:"blacklisted"`
}

// Decide returns the decision for one contact.
//
//   - Whitelist beats blacklist. A whitelisted contact is always passed and never
//     written back; its status and reason stay as found.
//   - A blacklisted contact always fails with reason blacklisted (status risky),
//     whatever the engine found (api.md: "always fails, with reason blacklisted").
//   - Otherwise the contact fails when the gate of its reason is on. Status stays
//     the status of the reason as found (so a role address that passes because the
//     role gate is off still reads "risky"); valid is passed.
func Decide(res verify.Result, s Settings, rules *Rules) Decision {
	var white, black bool
	if rules != nil {
		white, black = rules.Match(res.Email)
	}
	d := Decision{Reason: res.Reason, Status: res.Status, Whitelisted: white, Blacklisted: black}
	if d.Reason == "" {
		d.Reason = verify.ReasonValid
	}
	if d.Status == "" {
		d.Status = d.Reason.Status()
	}
	switch {
	case white:
		d.Passed = true
	case black:
		d.Reason, d.Status = verify.ReasonBlacklisted, verify.ReasonBlacklisted.Status()
		d.Passed = false
		d.WriteBack = true
	default:
		d.Passed = d.Reason == verify.ReasonValid || !gateOn(s, d.Reason)
		d.WriteBack = !d.Passed
	}
	return d
}

func gateOn(s Settings, r verify.Reason) bool {
	switch s.Aggressiveness {
	case PresetAggressive:
		return IsGate(string(r))
	case PresetCustom:
		return s.Checks[string(r)]
	default:
		return normalOn[string(r)]
	}
}

// normalizeKeyword is shared by rules and validation.
func normalizeKeyword(k string) string { return strings.ToLower(strings.TrimSpace(k)) }
