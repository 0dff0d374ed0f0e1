package esp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp/esptest"
)

// HubSpot's search answers at most 10,000 results: an incremental read of 10,001 changed contacts must
// re-window and still yield each exactly once — with timestamps that mostly differ (and some ties), and
// with all of them changed in the same millisecond (no timestamp to re-window from).
func TestHubSpotSearchBeyond10000(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sameMilli bool
	}{{"spread", false}, {"one millisecond", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang bound, not a speed goal
			defer cancel()
			h := newHarness(t, "hubspot", setup{seed: esptest.Seed{N: 10001, Seed: 11, Lists: 1}})
			since := time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC) // before every seeded change
			if tc.sameMilli {
				since = time.Now().Add(-time.Second)
				if n := len(h.fake.Touch(10001)); n != 10001 {
					t.Fatalf("touched %d", n)
				}
			}
			have, _, err := readAll(ctx, t, h.adapter(true), "", since, 0)
			if err != nil {
				t.Fatal(err)
			}
			exactlyOnce(t, h.fake, h.fake.Expected(), have)
		})
	}
}

// The fake enforces the cap the adapter works around: after ≥ 10,000 is HubSpot's 400.
func TestHubSpotFakeSearchCap(t *testing.T) {
	h := newHarness(t, "hubspot", setup{seed: esptest.Seed{N: 10, Seed: 1}})
	body := `{"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GTE","value":"0"}]}],"limit":100,"after":"10000"}`
	req, _ := http.NewRequest(http.MethodPost, h.fake.URL()+"/crm/v3/objects/contacts/search", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.fake.Credentials(true)["access_token"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("after=10000: HTTP %d, want 400", resp.StatusCode)
	}
}
