package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/store"
)

// pageParams reads ?cursor= and ?per_page= (1..100, default 25); anything else is a 400 naming the field.
func pageParams(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Cursor: q.Get("cursor"), Limit: 25}
	if v, ok := q["per_page"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > 100 || len(v) != 1 {
			return p, invalid("invalid_field", "per_page", "per_page must be an integer from 1 to 100")
		}
		p.Limit = n
	}
	return p, nil
}

func cursorError(err error) error {
	if errors.Is(err, store.ErrInvalidCursor) {
		return invalid("invalid_cursor", "cursor", "cursor is not a cursor this API returned")
	}
	return err
}

// platform resolves the {type} of the path. sendinblue (and the other informal names) are 404s whose
// message names the canonical slug.
func (s *server) platform(r *http.Request) (esp.Platform, error) {
	slug := r.PathValue("type")
	if p, ok := s.reg.Lookup(slug); ok {
		return p, nil
	}
	if c, ok := s.reg.Alias(slug); ok {
		return esp.Platform{}, errf(http.StatusNotFound, typeNotFound, "unknown_integration_type",
			strconv.Quote(strings.ToLower(slug))+" is not an integration type: use \""+c+"\"")
	}
	return esp.Platform{}, errf(http.StatusNotFound, typeNotFound, "unknown_integration_type",
		"unknown integration type; GET /v1/integrations lists the types")
}

// connection loads the path's connection of the caller's account and of the path's type.
func (s *server) connection(r *http.Request) (store.Connection, esp.Platform, error) {
	p, err := s.platform(r)
	if err != nil {
		return store.Connection{}, p, err
	}
	c, err := s.st.GetConnection(r.Context(), stateOf(r.Context()).accountID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.Type != p.Slug) {
		return store.Connection{}, p, errConnectionNotFound
	}
	return c, p, err
}

// GET /v1/integrations
func (s *server) listIntegrations(w http.ResponseWriter, r *http.Request) {
	pg, err := pageParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	all := s.reg.All()
	start := 0
	if pg.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(pg.Cursor)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "i"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(b), "i") || n <= 0 || n >= len(all) {
			s.fail(w, r, cursorError(store.ErrInvalidCursor))
			return
		}
		start = n
	}
	counts, err := s.st.ConnectionCounts(r.Context(), stateOf(r.Context()).accountID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	end := min(start+pg.Limit, len(all))
	out := make([]integrationJSON, 0, end-start)
	for _, p := range all[start:end] {
		out = append(out, s.renderIntegration(p, counts[p.Slug]))
	}
	next := ""
	if end < len(all) {
		next = base64.RawURLEncoding.EncodeToString([]byte("i" + strconv.Itoa(end)))
	}
	writeJSON(w, http.StatusOK, newPage(out, next))
}

// GET /v1/integrations/{type}
func (s *server) getIntegration(w http.ResponseWriter, r *http.Request) {
	p, err := s.platform(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	account := stateOf(r.Context()).accountID
	var conns []connectionJSON
	var n store.ConnectionCount
	pg := store.Page{Limit: 100}
	for {
		cs, next, err := s.st.ListConnections(r.Context(), account, store.ConnectionFilter{Type: p.Slug}, pg)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, c := range cs {
			conns = append(conns, renderConnection(c))
			n.Total++
			if c.Status == store.StatusActive {
				n.Active++
			}
		}
		if next == "" {
			break
		}
		pg.Cursor = next
	}
	if conns == nil {
		conns = []connectionJSON{}
	}
	writeJSON(w, http.StatusOK, integrationDetailJSON{integrationJSON: s.renderIntegration(p, n), Connections: conns})
}

// credentials reads the body's "credentials" member into strings and validates them with the platform's
// rules (the registry's field checks, including the SSRF rule for URLs with the operator's override as the
// one exception). Errors are 400 missing_credentials / invalid_credentials_format naming the field; they
// never echo a value.
func (s *server) credentials(p esp.Platform, raw json.RawMessage, present bool) (map[string]string, error) {
	if !present || strings.TrimSpace(string(raw)) == "null" {
		return nil, invalid("missing_credentials", "credentials", "credentials is required")
	}
	members, err := rawObject(raw, "credentials")
	if err != nil {
		return nil, invalid("invalid_credentials_format", "credentials", "credentials must be an object of strings")
	}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	creds := make(map[string]string, len(members))
	for _, k := range keys {
		var v string
		if err := json.Unmarshal(members[k], &v); err != nil || strings.TrimSpace(string(members[k])) == "null" {
			return nil, invalid("invalid_credentials_format", "credentials."+k, "credentials."+k+" must be a string")
		}
		creds[k] = v
	}
	out, err := p.Validate(creds, s.d.Settings.BaseURLs[p.Slug])
	if err != nil {
		var ce *esp.CredentialError
		if errors.As(err, &ce) {
			code := ce.Code
			if code != "missing_credentials" {
				code = "invalid_credentials_format"
			}
			return nil, invalid(code, "credentials."+ce.Field, "credentials."+ce.Field+" "+ce.Reason)
		}
		return nil, invalid("invalid_credentials_format", "credentials", "credentials are not valid for "+p.Slug)
	}
	return out, nil
}

// validateLive fetches the account's lists through the platform's adapter: a nil error means the
// credentials work. The platform's refusal is 400 credentials_rejected; anything else (unreachable, 5xx,
// throttled, timeouts after the client's retries within Settings.ValidateTimeout) is 502 esp_unavailable.
func (s *server) validateLive(r *http.Request, p esp.Platform, creds map[string]string) error {
	a, err := s.d.Adapters.Open(p.Slug, creds)
	if err != nil {
		var ce *esp.CredentialError
		if errors.As(err, &ce) {
			return invalid("invalid_credentials_format", "credentials."+ce.Field, "credentials."+ce.Field+" "+ce.Reason)
		}
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.d.Settings.ValidateTimeout)
	defer cancel()
	_, err = a.Lists(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, esp.ErrCredentialsRejected), errors.Is(err, esp.ErrBadRequest):
		return errf(http.StatusBadRequest, typeInvalid, "credentials_rejected", p.Name+" refused these credentials")
	case r.Context().Err() != nil:
		return r.Context().Err()
	}
	status := 0
	var ee *esp.Error
	if errors.As(err, &ee) {
		status = ee.Status
	}
	// Only the platform, the status and the sentinel are logged: never the error text of a foreign
	// library, which may quote a URL taken from the credentials.
	s.log.Warn().Str("request_id", stateOf(r.Context()).requestID).Str("platform", p.Slug).Int("esp_status", status).
		Bool("timeout", errors.Is(err, context.DeadlineExceeded)).Msg("live credential check failed")
	return errf(http.StatusBadGateway, typeESP, "esp_unavailable", p.Name+" could not be reached or kept failing; retry later")
}

func notConnectable(p esp.Platform) error {
	msg := p.Name + " can only be connected through its OAuth consent flow, not via the API"
	if p.Connectable {
		msg = p.Name + " cannot be connected with this build (no adapter)"
	}
	return errf(http.StatusUnprocessableEntity, typeInvalid, "type_not_connectable", msg)
}

// POST /v1/integrations/{type}/connections — checks in api.md's order: 404 type, 422 not connectable,
// 400 body/credentials, 402 credits, live check (400 rejected / 502 unavailable), 201.
func (s *server) connect(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r.Context())
	p, err := s.platform(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !s.connectable(p) {
		s.fail(w, r, notConnectable(p))
		return
	}
	if _, err := checkBody(st.body, true); err != nil {
		s.fail(w, r, err)
		return
	}
	var top map[string]json.RawMessage
	_ = json.Unmarshal(st.body, &top)
	for _, k := range sortedKeys(top) {
		if k != "name" && k != "credentials" {
			s.fail(w, r, unknownField("", k))
			return
		}
	}
	name := p.Name
	if raw, ok := top["name"]; ok {
		v, err := rawString(raw, "name")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if name, err = checkName(v); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	raw, present := top["credentials"]
	creds, err := s.credentials(p, raw, present)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	bal, err := s.st.Balance(r.Context(), st.accountID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if bal <= 0 {
		s.fail(w, r, errf(http.StatusPaymentRequired, typeBilling, "insufficient_credits",
			"the account has no verification credits left; add credits and retry"))
		return
	}
	if err := s.validateLive(r, p, creds); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.st.CreateConnection(r.Context(), store.NewConnection{AccountID: st.accountID, Type: p.Slug, Name: name,
		AutoFlossEnabled: true, Settings: defaultSettings().raw(), Credentials: creds})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, renderConnection(c))
}

// checkName trims a connection name: 1–100 characters, no control characters.
func checkName(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" || utf8.RuneCountInString(v) > 100 {
		return "", invalid("invalid_field", "name", "name must be 1–100 characters")
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return "", invalid("invalid_field", "name", "name must not contain control characters")
		}
	}
	return v, nil
}

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// POST /v1/integrations/{type}/connections/{id}/reconnect — re-validates live (with new credentials from
// the body when given, else the stored ones) and sets the connection active; new credentials replace the
// stored ones only after they pass.
func (s *server) reconnect(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r.Context())
	c, p, err := s.connection(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	empty, err := checkBody(st.body, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var creds map[string]string
	fresh := false
	if !empty {
		var top map[string]json.RawMessage
		_ = json.Unmarshal(st.body, &top)
		for _, k := range sortedKeys(top) {
			if k != "credentials" {
				s.fail(w, r, unknownField("", k))
				return
			}
		}
		if raw, ok := top["credentials"]; ok {
			if creds, err = s.credentials(p, raw, true); err != nil {
				s.fail(w, r, err)
				return
			}
			fresh = true
		}
	}
	if !s.connectable(p) {
		s.fail(w, r, notConnectable(p))
		return
	}
	if !fresh {
		if creds, err = s.st.ConnectionCredentials(r.Context(), c.ID); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if err := s.validateLive(r, p, creds); err != nil {
		s.fail(w, r, err)
		return
	}
	var u store.ConnectionUpdate
	changed := false
	if c.Status != store.StatusActive {
		active := store.StatusActive
		u.Status, changed = &active, true
	}
	if fresh {
		u.Credentials, changed = creds, true
	}
	if changed {
		if c, err = s.st.UpdateConnection(r.Context(), st.accountID, c.ID, u); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, renderConnection(c))
}
