package esp

import (
	"errors"
	"testing"
)

// The api_url is user input that receives the key: the adapter itself refuses URLs off ActiveCampaign's
// https domains (even when built without Registry.Open), and the operator's override replaces only the
// scheme and host.
func TestActiveCampaignBaseURL(t *testing.T) {
	cases := []struct {
		name, apiURL, override, want string
		bad                          bool
	}{
		{"account url", "https://acme.api-us1.com", "", "https://acme.api-us1.com/api/3", false},
		{"trailing slash and api path", "https://acme.api-us1.com/api/3/", "", "https://acme.api-us1.com/api/3", false},
		{"activehosted", "https://acme.activehosted.com", "", "https://acme.activehosted.com/api/3", false},
		{"override replaces the host", "https://acme.api-us1.com", "http://127.0.0.1:9999", "http://127.0.0.1:9999/api/3", false},
		{"override with a path prefix", "https://acme.api-us1.com", "https://proxy.example/ac/", "https://proxy.example/ac/api/3", false},
		{"http refused", "http://acme.api-us1.com", "", "", true},
		{"foreign host refused", "https://acme.api-us1.com.evil.example", "", "", true},
		{"bare domain refused", "https://api-us1.com", "", "", true},
		{"internal address refused", "https://169.254.169.254", "", "", true},
		{"other port refused", "https://acme.api-us1.com:8443", "", "", true},
		{"user info refused", "https://user@acme.api-us1.com", "", "", true},
		{"loopback only when it is the override", "http://127.0.0.1:9999", "", "", true},
		{"loopback equal to the override", "http://127.0.0.1:9999", "http://127.0.0.1:9999", "http://127.0.0.1:9999/api/3", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := newActiveCampaign(Config{
				Credentials: map[string]string{"api_url": c.apiURL, "api_key": "k"},
				BaseURL:     c.override, Client: NewClient(ClientOptions{}),
			})
			if c.bad {
				var ce *CredentialError
				if !errors.As(err, &ce) || ce.Field != "api_url" {
					t.Fatalf("got %v, want a CredentialError on api_url", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := a.(*activeCampaign).base; got != c.want {
				t.Fatalf("base %q, want %q", got, c.want)
			}
		})
	}
}
