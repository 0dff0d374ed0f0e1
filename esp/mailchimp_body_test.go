package esp

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestMailchimpFieldsBody: the hand-built write-back body is what encoding/json wrote before.
func TestMailchimpFieldsBody(t *testing.T) {
	for _, f := range []Fields{
		{},
		{FieldPassed: "false", FieldReason: "mailbox_does_not_exist", FieldMode: "normal", FieldFlossedOn: "2025-06-01",
			FieldStatus: "invalid", FieldFixed: "false", FieldSuggestion: "a<b>&\"c\"@x.com"},
		{"custom name": "é\u2028\x01"},
	} {
		mf := map[string]string{}
		for k, v := range f {
			mf[MailchimpMergeTag(k)] = v
		}
		want, _ := json.Marshal(map[string]any{"merge_fields": mf})
		if got := mcFieldsBody(f); string(got) != string(want) {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// TestJSONRequestHeaders: DoJSON's headers (adapter's own, Content-Type and Accept defaults) and that the
// adapter's header map is left alone.
func TestJSONRequestHeaders(t *testing.T) {
	a := &Account{platform: "x"}
	h := http.Header{"Authorization": {"Basic k"}}
	req, err := a.jsonRequest("PATCH", "http://x/y", h, rawJSON(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("Authorization") != "Basic k" || req.Header.Get("Content-Type") != "application/json" ||
		req.Header.Get("Accept") != "application/json" || string(req.Body) != `{"a":1}` {
		t.Errorf("request %+v", req)
	}
	if len(h) != 1 {
		t.Errorf("adapter header modified: %v", h)
	}
	h2 := http.Header{"Content-Type": {"application/vnd.api+json"}, "Accept": {"text/csv"}}
	req, _ = a.jsonRequest("POST", "http://x/y", h2, map[string]int{"b": 2})
	if req.Header.Get("Content-Type") != "application/vnd.api+json" || req.Header.Get("Accept") != "text/csv" || string(req.Body) != `{"b":2}` {
		t.Errorf("request %+v", req)
	}
	req, _ = a.jsonRequest("GET", "http://x/y", nil, nil)
	if req.Header.Get("Content-Type") != "" || req.Header.Get("Accept") != "application/json" || req.Body != nil {
		t.Errorf("request %+v", req)
	}
}
