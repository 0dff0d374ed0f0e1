package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
)

// Error types of the envelope (api.md "Errors").
const (
	typeInvalid   = "invalid_request_error"
	typeAuth      = "authentication_error"
	typeBilling   = "billing_error"
	typeNotFound  = "not_found_error"
	typeConflict  = "conflict_error"
	typeRateLimit = "rate_limit_error"
	typeESP       = "esp_error"
	typeAPI       = "api_error"
)

// apiError is an error answer. Message never contains credentials, keys or addresses.
type apiError struct {
	Status  int
	Code    string
	Type    string
	Message string
	Field   string // the request field at fault, when there is one
	header  map[string]string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errf(status int, typ, code, msg string) *apiError {
	return &apiError{Status: status, Type: typ, Code: code, Message: msg}
}

// invalid is a 400 naming the field.
func invalid(code, field, msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Code: code, Field: field, Message: msg}
}

func internal() *apiError {
	return errf(http.StatusInternalServerError, typeAPI, "internal_error", "an internal error occurred; retry later")
}

type envelope struct {
	Error envelopeBody `json:"error"`
}

type envelopeBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Field     string `json:"field,omitempty"`
}

// fail writes err as the error envelope. Unknown errors are logged (without details a client could see)
// and answered 500.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			e = errf(499, typeAPI, "client_closed_request", "the client closed the request")
		} else {
			st := stateOf(r.Context())
			s.log.Error().Str("request_id", st.requestID).Str("route", st.route).Err(err).Msg("internal error")
			e = internal()
		}
	}
	for k, v := range e.header {
		w.Header().Set(k, v)
	}
	writeJSON(w, e.Status, envelope{Error: envelopeBody{Code: e.Code, Message: e.Message, Type: e.Type,
		RequestID: w.Header().Get("X-Request-Id"), Field: e.Field}})
}

func rateLimited(retryAfterSeconds int) *apiError {
	e := errf(http.StatusTooManyRequests, typeRateLimit, "rate_limited", "too many requests for this API key; retry after "+strconv.Itoa(retryAfterSeconds)+"s")
	e.header = map[string]string{"Retry-After": strconv.Itoa(retryAfterSeconds)}
	return e
}

var (
	errConnectionNotFound = errf(http.StatusNotFound, typeNotFound, "connection_not_found", "no such connection")
	errRuleNotFound       = errf(http.StatusNotFound, typeNotFound, "rule_not_found", "no such keyword rule")
)
