package esp_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
)

// Moosend's update replaces every custom field: the adapter must send the ones it does not change, and the
// fake must clear the ones an update omits (so a careless adapter would lose data).
func TestMoosendUpdateKeepsOtherFields(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := esptest.Start("moosend", esptest.Options{Seed: esptest.Seed{N: 20, Seed: 9, Lists: 1}, Limits: &esp.Limits{}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := esp.NewClient(esp.ClientOptions{Limits: map[string]esp.Limits{"moosend": {}}})
	a, err := esp.Platforms().Open("moosend", f.Credentials(true), c, esp.Options{BaseURLs: map[string]string{"moosend": f.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.EnsureFields(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := a.Contacts(ctx, "", time.Time{})
	if err != nil || len(page.Contacts) < 2 {
		t.Fatalf("contacts: %v (%d)", err, len(page.Contacts))
	}
	ct := page.Contacts[0]
	if err := a.SetFields(ctx, ct, esp.Fields{esp.FieldReason: "typo", esp.FieldStatus: "risky"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetFields(ctx, ct, esp.Fields{esp.FieldMode: "normal"}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddTag(ctx, ct, esp.FailedTag("role")); err != nil {
		t.Fatal(err)
	}
	i, _ := f.IndexOf(ct.ID)
	r := f.Record(i)
	for k, want := range map[string]string{esp.FieldReason: "typo", esp.FieldStatus: "risky", esp.FieldMode: "normal"} {
		if r.Fields[k] != want {
			t.Errorf("%s = %q, want %q (fields %v)", k, r.Fields[k], want, r.Fields)
		}
	}
	if v, set := r.Fields["City"]; set && v == "" {
		t.Errorf("the seeded City field was cleared")
	}

	// A bare update (what a careless adapter sends) clears the seeded field: the fake enforces the rule.
	other := page.Contacts[1]
	j, _ := f.IndexOf(other.ID)
	u := f.URL() + "/v3/subscribers/" + other.ListID + "/update/" + other.ID + ".json?apikey=" + f.Secret()
	resp, err := http.Post(u, "application/json", bytes.NewReader([]byte(`{"Email":"`+other.Email+`","CustomFields":["mf_reason=x"]}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v, set := f.Record(j).Fields["City"]; !set || v != "" {
		t.Errorf("an update without City did not clear it: %q %v", v, set)
	}
}
