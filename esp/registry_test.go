package esp

import (
	"errors"
	"strings"
	"testing"
)

func TestRegistryHasAll18(t *testing.T) {
	want := strings.Fields("klaviyo mailchimp brevo activecampaign convertkit mailerlite getresponse campaignmonitor constantcontact drip gist hubspot keap moosend ontraport sendlane iterable customerio")
	r := Platforms()
	if got := len(r.All()); got != len(want) {
		t.Fatalf("%d platforms, want %d", got, len(want))
	}
	for _, s := range want {
		p, ok := r.Lookup(s)
		if !ok {
			t.Fatalf("%s missing", s)
		}
		if p.Name == "" || len(p.Fields) == 0 {
			t.Errorf("%s: incomplete entry", s)
		}
		if p.Connectable != (s != "constantcontact") {
			t.Errorf("%s: connectable %v", s, p.Connectable)
		}
		if p.Limits.Rate == 0 && p.Limits.Concurrency == 0 {
			t.Errorf("%s: no limits", s)
		}
	}
	if _, ok := r.Lookup("sendinblue"); ok {
		t.Fatal("sendinblue must not be a slug")
	}
	if c, ok := r.Alias("sendinblue"); !ok || c != "brevo" {
		t.Fatalf("Alias(sendinblue) = %q, %v", c, ok)
	}
}

func TestValidate(t *testing.T) {
	const secret = "s3cr3t-value-xyz"
	cases := []struct {
		slug     string
		creds    map[string]string
		override string
		field    string // "" = valid
		code     string
	}{
		{"klaviyo", map[string]string{"api_key": "pk_abc"}, "", "", ""},
		{"klaviyo", map[string]string{}, "", "api_key", "missing_credentials"},
		{"klaviyo", map[string]string{"api_key": "  "}, "", "api_key", "missing_credentials"},
		{"klaviyo", map[string]string{"api_key": "pk", "extra": secret}, "", "extra", "invalid_credentials_format"},
		{"mailchimp", map[string]string{"api_key": "abc-us19"}, "", "", ""},
		{"mailchimp", map[string]string{"api_key": secret + "nodc"}, "", "api_key", "invalid_credentials_format"},
		{"mailchimp", map[string]string{"api_key": secret + "-"}, "", "api_key", "invalid_credentials_format"},
		{"activecampaign", map[string]string{"api_url": "https://acme.api-us1.com", "api_key": secret}, "", "", ""},
		{"activecampaign", map[string]string{"api_url": "https://acme.activehosted.com/", "api_key": secret}, "", "", ""},
		{"activecampaign", map[string]string{"api_url": "http://acme.api-us1.com", "api_key": secret}, "", "api_url", "invalid_credentials_format"},
		{"activecampaign", map[string]string{"api_url": "https://169.254.169.254", "api_key": secret}, "", "api_url", "invalid_credentials_format"},
		{"activecampaign", map[string]string{"api_url": "https://evil.com/.api-us1.com", "api_key": secret}, "", "api_url", "invalid_credentials_format"},
		{"activecampaign", map[string]string{"api_url": "https://api-us1.com.evil.com", "api_key": secret}, "", "api_url", "invalid_credentials_format"},
		{"activecampaign", map[string]string{"api_url": "http://127.0.0.1:8080", "api_key": secret}, "http://127.0.0.1:8080", "", ""},
		{"activecampaign", map[string]string{"api_url": "http://127.0.0.1:9999", "api_key": secret}, "http://127.0.0.1:8080", "api_url", "invalid_credentials_format"},
		{"iterable", map[string]string{"api_key": secret}, "", "", ""},
		{"iterable", map[string]string{"api_key": secret, "region": "eu"}, "", "", ""},
		{"iterable", map[string]string{"api_key": secret, "region": "ap"}, "", "region", "invalid_credentials_format"},
		{"customerio", map[string]string{"app_api_key": "a", "site_id": "s", "track_api_key": "t"}, "", "region", "missing_credentials"},
		{"customerio", map[string]string{"app_api_key": "a", "site_id": "s", "track_api_key": "t", "region": "eu"}, "", "", ""},
	}
	r := Platforms()
	for _, c := range cases {
		p, _ := r.Lookup(c.slug)
		out, err := p.Validate(c.creds, c.override)
		if c.field == "" {
			if err != nil {
				t.Errorf("%s %v: %v", c.slug, c.creds, err)
			}
			if c.slug == "iterable" && out["region"] == "" {
				t.Errorf("iterable: region default not filled")
			}
			continue
		}
		var ce *CredentialError
		if !errors.As(err, &ce) || ce.Field != c.field || ce.Code != c.code {
			t.Errorf("%s: got %v, want %s/%s", c.slug, err, c.field, c.code)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error echoes the secret: %v", c.slug, err)
		}
	}
}
