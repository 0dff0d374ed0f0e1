// Package hooks receives the verify_first webhooks of email platforms that announce new subscribers and
// turns each new subscriber into a floss:verify_contact task (ids only: never the address).
//
// Route: POST /v1/hooks/{type}/{connection_id}/{secret} (and GET/HEAD on the same URL, which answers 200
// so a platform's URL validation ping — Mailchimp's — succeeds). The secret is the connection's
// WebhookSecret, compared in constant time; an unknown type, an unknown connection, a type that is not the
// connection's or a wrong secret all answer the same 404. A disconnected connection, or one with
// verify_first off, answers 200 and enqueues nothing (a platform that gets errors disables its webhook).
//
// Payloads (each platform's real format):
//   - mailchimp: form-encoded `type=subscribe&data[id]=…&data[email]=…&data[list_id]=…`. The contact id
//     the Mailchimp adapter uses is the member's subscriber hash (MD5 of the lower-cased address), which
//     the webhook does not send (its data[id] is the unique email id), so it is computed here; the address
//     itself goes nowhere.
//   - activecampaign: form-encoded `type=subscribe&contact[id]=…&contact[email]=…&list=…` (also
//     `contact_add`). The adapter reads each contact once with its lists included, so the list is not part
//     of the contact's identity.
//   - convertkit: JSON `{"subscriber":{"id":…,"email_address":…}}` (subscriber.subscriber_activate and
//     form/tag subscribe rules all post this shape).
//   - mailerlite: the classic batch `{"events":[{"type":"subscriber.created","data":{"subscriber":{"id":…,
//     "email":…}}}]}` and the current single-subscriber shape `{"id":…,"email":…,…}` (with an optional
//     "event"/"type" naming subscriber.created); both are accepted, other event types are ignored.
//
// Nothing here logs an address: logs carry the connection id, the platform and counts.
package hooks

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/store"
)

// Deps are the webhook handler's dependencies.
type Deps struct {
	Store    *store.Store
	Enqueuer jobs.Enqueuer
	Log      zerolog.Logger
	Now      func() time.Time // nil = time.Now
	MaxBody  int64            // bytes; 0 = 1 MiB
}

// Contact is one new subscriber a webhook announced, by the platform's ids.
type Contact struct {
	ID     string
	ListID string
}

// Parser extracts the new subscribers of one webhook request (body already read).
type Parser func(contentType string, body []byte) ([]Contact, error)

// Parsers are the platforms whose webhooks are understood (jobs.WebhookPlatforms lists the same slugs).
var Parsers = map[string]Parser{
	"mailchimp":      parseMailchimp,
	"activecampaign": parseActiveCampaign,
	"convertkit":     parseConvertKit,
	"mailerlite":     parseMailerLite,
}

type handler struct {
	d Deps
}

// New returns the handler; mount it at /v1/hooks/ on the outer mux.
func New(d Deps) http.Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.MaxBody <= 0 {
		d.MaxBody = 1 << 20
	}
	h := &handler{d: d}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/hooks/{type}/{connection_id}/{secret}", h.post)
	mux.HandleFunc("GET /v1/hooks/{type}/{connection_id}/{secret}", h.ping)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusNotFound, `{"error":"not_found"}`) })
	return mux
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body+"\n")
}

// connection authenticates the URL; ok false means 404 was written.
func (h *handler) connection(w http.ResponseWriter, r *http.Request) (store.Connection, Parser, bool) {
	typ, id, secret := r.PathValue("type"), r.PathValue("connection_id"), r.PathValue("secret")
	parse, known := Parsers[typ]
	c, err := h.d.Store.ConnectionByID(r.Context(), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.d.Log.Error().Err(err).Str("connection_id", id).Msg("webhook: read connection")
		reply(w, http.StatusServiceUnavailable, `{"error":"unavailable"}`)
		return store.Connection{}, nil, false
	}
	// Compare even when something else is already wrong, so timing tells nothing.
	match := subtle.ConstantTimeCompare([]byte(secret), []byte(c.WebhookSecret)) == 1
	if !known || err != nil || c.Type != typ || c.WebhookSecret == "" || !match {
		reply(w, http.StatusNotFound, `{"error":"not_found"}`)
		return store.Connection{}, nil, false
	}
	return c, parse, true
}

func (h *handler) ping(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := h.connection(w, r); ok {
		reply(w, http.StatusOK, `{"ok":true}`)
	}
}

func (h *handler) post(w http.ResponseWriter, r *http.Request) {
	c, parse, ok := h.connection(w, r)
	if !ok {
		return
	}
	log := h.d.Log.With().Str("connection_id", c.ID).Str("platform", c.Type).Logger()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.d.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			reply(w, http.StatusRequestEntityTooLarge, `{"error":"body_too_large"}`)
			return
		}
		reply(w, http.StatusBadRequest, `{"error":"unreadable_body"}`)
		return
	}
	contacts, err := parse(r.Header.Get("Content-Type"), body)
	if err != nil {
		log.Warn().Str("problem", err.Error()).Msg("webhook: payload not understood")
		reply(w, http.StatusBadRequest, `{"error":"invalid_payload"}`)
		return
	}
	if c.Status != store.StatusActive || !c.VerifyFirst {
		reply(w, http.StatusOK, fmt.Sprintf(`{"accepted":0,"ignored":%d}`, len(contacts)))
		return
	}
	accepted, dups := 0, 0
	now := h.d.Now().Unix()
	for _, ct := range contacts {
		task, err := jobs.NewVerifyContactTask(jobs.VerifyContactPayload{ConnectionID: c.ID, ContactID: ct.ID, ListID: ct.ListID, ReceivedAt: now})
		if err != nil {
			reply(w, http.StatusInternalServerError, `{"error":"internal"}`)
			return
		}
		_, err = h.d.Enqueuer.EnqueueContext(r.Context(), task)
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
			dups++
		default:
			log.Error().Err(err).Msg("webhook: enqueue floss:verify_contact")
			// The platform retries a failed delivery; what was enqueued dedupes by TaskID.
			reply(w, http.StatusServiceUnavailable, `{"error":"queue_unavailable"}`)
			return
		}
	}
	log.Info().Int("accepted", accepted).Int("duplicates", dups).Msg("webhook")
	reply(w, http.StatusOK, fmt.Sprintf(`{"accepted":%d,"duplicates":%d}`, accepted, dups))
}

func form(body []byte) (url.Values, error) {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errors.New("body is not form-encoded")
	}
	return v, nil
}

func parseMailchimp(_ string, body []byte) ([]Contact, error) {
	v, err := form(body)
	if err != nil {
		return nil, err
	}
	if v.Get("type") != "subscribe" {
		return nil, nil
	}
	email := strings.ToLower(strings.TrimSpace(v.Get("data[email]")))
	list := v.Get("data[list_id]")
	if email == "" || list == "" {
		return nil, errors.New("mailchimp subscribe without data[email] or data[list_id]")
	}
	h := md5.Sum([]byte(email))
	return []Contact{{ID: hex.EncodeToString(h[:]), ListID: list}}, nil
}

func parseActiveCampaign(_ string, body []byte) ([]Contact, error) {
	v, err := form(body)
	if err != nil {
		return nil, err
	}
	switch v.Get("type") {
	case "subscribe", "contact_add":
	default:
		return nil, nil
	}
	id := strings.TrimSpace(v.Get("contact[id]"))
	if id == "" {
		return nil, errors.New("activecampaign subscribe without contact[id]")
	}
	return []Contact{{ID: id}}, nil
}

// flexID reads a JSON id that platforms send as a number or a string.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*f = flexID(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("id is neither a number nor a string")
	}
	*f = flexID(s)
	return nil
}

func parseConvertKit(_ string, body []byte) ([]Contact, error) {
	var p struct {
		Subscriber *struct {
			ID flexID `json:"id"`
		} `json:"subscriber"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, errors.New("body is not the convertkit JSON shape")
	}
	if p.Subscriber == nil || p.Subscriber.ID == "" {
		return nil, errors.New("convertkit payload without subscriber.id")
	}
	return []Contact{{ID: string(p.Subscriber.ID)}}, nil
}

func parseMailerLite(_ string, body []byte) ([]Contact, error) {
	var p struct {
		Events []struct {
			Type string `json:"type"`
			Data struct {
				Subscriber struct {
					ID flexID `json:"id"`
				} `json:"subscriber"`
			} `json:"data"`
		} `json:"events"`
		ID    flexID `json:"id"`
		Email string `json:"email"`
		Event string `json:"event"`
		Type  string `json:"type"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, errors.New("body is not the mailerlite JSON shape")
	}
	if p.Events != nil {
		var out []Contact
		for _, e := range p.Events {
			if e.Type == "subscriber.created" && e.Data.Subscriber.ID != "" {
				out = append(out, Contact{ID: string(e.Data.Subscriber.ID)})
			}
		}
		return out, nil
	}
	if p.ID == "" {
		return nil, errors.New("mailerlite payload without events or id")
	}
	for _, ev := range []string{p.Event, p.Type} {
		if ev != "" && ev != "subscriber.created" {
			return nil, nil
		}
	}
	return []Contact{{ID: string(p.ID)}}, nil
}
