package api

import (
	"encoding/json"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/store"
)

// On-failure actions (api.md "The connection object").
const (
	onFailureUpdateFields = "update_fields"
	onFailureUnsubscribe  = "unsubscribe"
	onFailureDelete       = "delete"
	onFailureNone         = "none"
)

func isOnFailure(s string) bool {
	switch s {
	case onFailureUpdateFields, onFailureUnsubscribe, onFailureDelete, onFailureNone:
		return true
	}
	return false
}

// settings is a connection's settings document as stored (store.Connection.Settings) and shown. Checks
// always lists every gate.
type settings struct {
	Aggressiveness string          `json:"aggressiveness"`
	VerifyFirst    bool            `json:"verify_first"`
	Checks         map[string]bool `json:"checks"`
	OnFailure      string          `json:"on_failure"`
}

// defaultSettings are a new connection's: the normal preset, verify_first on, fields written on failure.
func defaultSettings() settings {
	return settings{Aggressiveness: policy.PresetNormal, VerifyFirst: true, Checks: policy.Preset(policy.PresetNormal),
		OnFailure: onFailureUpdateFields}
}

// parseSettings reads stored settings, filling what is missing with the defaults and completing checks.
func parseSettings(raw json.RawMessage) settings {
	s := defaultSettings()
	var in struct {
		Aggressiveness *string         `json:"aggressiveness"`
		VerifyFirst    *bool           `json:"verify_first"`
		Checks         map[string]bool `json:"checks"`
		OnFailure      *string         `json:"on_failure"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return s
	}
	if in.Aggressiveness != nil && policy.IsPreset(*in.Aggressiveness) {
		s.Aggressiveness = *in.Aggressiveness
	}
	if in.VerifyFirst != nil {
		s.VerifyFirst = *in.VerifyFirst
	}
	if in.OnFailure != nil && isOnFailure(*in.OnFailure) {
		s.OnFailure = *in.OnFailure
	}
	s.Checks = policy.EffectiveGates(policy.Settings{Aggressiveness: s.Aggressiveness, Checks: in.Checks})
	return s
}

func (s settings) raw() json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

type connectionJSON struct {
	ID                 string   `json:"id"`
	Type               string   `json:"type"`
	Name               string   `json:"name"`
	Status             string   `json:"status"`
	DisconnectedReason string   `json:"disconnected_reason,omitempty"`
	AutoFlossEnabled   bool     `json:"auto_floss_enabled"`
	CreatedAt          string   `json:"created_at"`
	LastSyncedAt       *string  `json:"last_synced_at"`
	WebhookURL         string   `json:"webhook_url"`
	Settings           settings `json:"settings"`
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func tsp(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := ts(*t)
	return &s
}

func renderConnection(c store.Connection) connectionJSON {
	out := connectionJSON{ID: c.ID, Type: c.Type, Name: c.Name, Status: c.Status, AutoFlossEnabled: c.AutoFlossEnabled,
		CreatedAt: ts(c.CreatedAt), LastSyncedAt: tsp(c.LastSyncedAt), Settings: parseSettings(c.Settings),
		WebhookURL: "/v1/hooks/" + c.Type + "/" + c.ID + "/" + c.WebhookSecret}
	if c.Status == store.StatusDisconnected {
		out.DisconnectedReason = c.DisconnectedReason
		if out.DisconnectedReason == "" {
			out.DisconnectedReason = store.ReasonUser
		}
	}
	return out
}

type credentialFieldJSON struct {
	Name   string `json:"name"`
	Label  string `json:"label"`
	Secret bool   `json:"secret"`
}

type integrationJSON struct {
	Type             string                `json:"type"`
	Name             string                `json:"name"`
	Connectable      bool                  `json:"connectable"`
	CredentialFields []credentialFieldJSON `json:"credential_fields"`
	Connected        bool                  `json:"connected"`
	ConnectionCount  int                   `json:"connection_count"`
}

type integrationDetailJSON struct {
	integrationJSON
	Connections []connectionJSON `json:"connections"`
}

func (s *server) renderIntegration(p esp.Platform, n store.ConnectionCount) integrationJSON {
	fields := make([]credentialFieldJSON, 0, len(p.Fields))
	for _, f := range p.Fields {
		fields = append(fields, credentialFieldJSON{Name: f.Name, Label: f.Label, Secret: f.Secret})
	}
	return integrationJSON{Type: p.Slug, Name: p.Name, Connectable: s.connectable(p), CredentialFields: fields,
		Connected: n.Active > 0, ConnectionCount: n.Total}
}

// connectable: the registry says the API can connect it and this build has its adapter.
func (s *server) connectable(p esp.Platform) bool {
	return p.Connectable && s.d.Adapters.Available(p.Slug)
}

type ruleJSON struct {
	ID        string `json:"id"`
	Keyword   string `json:"keyword"`
	MatchOn   string `json:"match_on"`
	CreatedAt string `json:"created_at"`
}

func renderRule(r store.Rule) ruleJSON {
	return ruleJSON{ID: r.ID, Keyword: r.Keyword, MatchOn: r.MatchOn, CreatedAt: ts(r.CreatedAt)}
}

type countsJSON struct {
	Seen        int64 `json:"seen"`
	Skipped     int64 `json:"skipped"`
	Reused      int64 `json:"reused"`
	Verified    int64 `json:"verified"`
	Passed      int64 `json:"passed"`
	Failed      int64 `json:"failed"`
	WrittenBack int64 `json:"written_back"`
}

type runErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type runJSON struct {
	ID          string           `json:"id"`
	Kind        string           `json:"kind"`
	State       string           `json:"state"`
	StartedAt   *string          `json:"started_at"`
	FinishedAt  *string          `json:"finished_at"`
	Counts      countsJSON       `json:"counts"`
	ByReason    map[string]int64 `json:"by_reason"`
	CreditsUsed int64            `json:"credits_used"`
	Progress    *float64         `json:"progress"`
	Error       *runErrorJSON    `json:"error"`
}

func renderRun(r store.Run) runJSON {
	out := runJSON{ID: r.ID, Kind: r.Kind, State: r.State, StartedAt: tsp(r.StartedAt), FinishedAt: tsp(r.FinishedAt),
		Counts: countsJSON(r.Counts), ByReason: r.ByReason, CreditsUsed: r.CreditsUsed, Progress: r.Progress()}
	if out.ByReason == nil {
		out.ByReason = map[string]int64{}
	}
	if r.Error != nil {
		out.Error = &runErrorJSON{Code: r.Error.Code, Message: r.Error.Message}
	}
	return out
}

type resultJSON struct {
	ContactID  string  `json:"contact_id"`
	ListID     string  `json:"list_id,omitempty"`
	Email      string  `json:"email"`
	Status     string  `json:"status"`
	Reason     string  `json:"reason"`
	Passed     bool    `json:"passed"`
	Suggestion *string `json:"suggestion"`
	Action     string  `json:"action"`
	RunID      string  `json:"run_id"`
	VerifiedAt string  `json:"verified_at"`
}

func renderResult(r store.Result) resultJSON {
	out := resultJSON{ContactID: r.ContactID, ListID: r.ListID, Email: r.Email, Status: r.Status, Reason: r.Reason,
		Passed: r.Passed, Action: r.Action, RunID: r.RunID, VerifiedAt: ts(r.VerifiedAt)}
	if out.Action == "" {
		out.Action = "none"
	}
	if r.Suggestion != "" {
		s := r.Suggestion
		out.Suggestion = &s
	}
	return out
}

type pagination struct {
	NextCursor *string `json:"next_cursor"`
}

type page[T any] struct {
	Data       []T        `json:"data"`
	Pagination pagination `json:"pagination"`
}

func newPage[T any](data []T, next string) page[T] {
	if data == nil {
		data = []T{}
	}
	p := page[T]{Data: data}
	if next != "" {
		p.Pagination.NextCursor = &next
	}
	return p
}
