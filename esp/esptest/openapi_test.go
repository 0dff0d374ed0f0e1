package esptest

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestValidatorCatchesDrift(t *testing.T) {
	cases := []struct {
		name   string
		url    string
		rev    bool
		status int
		body   string
		bad    bool
	}{
		{"good page", "/api/profiles?page%5Bsize%5D=100", true, 200, `{"data":[],"links":{"self":"http://x/api/profiles"}}`, false},
		{"page over max", "/api/profiles?page%5Bsize%5D=500", true, 200, `{"data":[],"links":{"self":"http://x/api/profiles"}}`, true},
		{"missing revision", "/api/profiles", false, 200, `{"data":[],"links":{"self":"http://x/api/profiles"}}`, true},
		{"response without data", "/api/profiles", true, 200, `{"links":{"self":"http://x/api/profiles"}}`, true},
		{"undocumented route", "/api/nothing", false, 200, `{}`, false},
	}
	v, err := LoadValidator(klaviyoSpec().OpenAPI...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://127.0.0.1:1"+c.url, nil)
			if c.rev {
				r.Header.Set("revision", "2026-07-15")
			}
			r.Header.Set("Authorization", "Klaviyo-API-Key x")
			h := http.Header{"Content-Type": {"application/vnd.api+json"}}
			got := v.Check(r, c.status, h, []byte(c.body))
			if (len(got) > 0) != c.bad {
				t.Fatalf("violations %v, want bad=%v", got, c.bad)
			}
		})
	}
}

func TestSwaggerDocsLoad(t *testing.T) {
	for _, d := range []string{"brevo/swagger.yaml", "iterable/api-docs.json"} {
		if _, err := LoadValidator(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
}
