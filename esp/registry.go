package esp

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// Limits are one platform account's request budget as a token bucket (Rate requests per second, Burst at
// once) plus an optional cap on simultaneous requests. Rate 0 means "no rate published": only Concurrency
// (when > 0) and the platform's own throttle answers bound the client.
//
// Where a platform publishes a rolling window (e.g. 120 per minute), the defaults are chosen so that the
// bucket can never exceed the window: Burst + Rate×window ≤ quota.
type Limits struct {
	Rate        float64 // requests per second, steady
	Burst       int     // requests allowed at once on top of the steady rate
	Concurrency int     // simultaneous requests per account; 0 = unbounded
}

// CredentialField is one field of a platform's credentials as the API lists it
// (GET /v1/integrations: name, label, secret).
type CredentialField struct {
	Name   string
	Label  string
	Secret bool
	// Optional fields may be absent; Default is then filled in by Validate.
	Optional bool
	Default  string
	// Enum, when set, lists the allowed values.
	Enum []string
}

// Platform is one registry entry: everything the API and the worker know about a platform type.
type Platform struct {
	Slug         string
	Name         string
	Fields       []CredentialField
	Connectable  bool // false: only an OAuth consent flow can connect it (POST connect answers 422)
	Limits       Limits
	Capabilities Capabilities
	// New builds the adapter; nil until the platform's adapter file exists.
	New func(Config) (Adapter, error)
	// check runs after the generic field checks (shape rules such as Mailchimp's -dc suffix).
	check func(creds map[string]string, override string) error
}

// Config is what a platform constructor gets. Credentials have been through Registry.Validate.
type Config struct {
	Credentials map[string]string
	// BaseURL is the operator's override of the platform's base URL ("" = the real platform). What it
	// replaces is platform-specific: Mailchimp's https://<dc>.api.mailchimp.com, ActiveCampaign's api_url
	// host, otherwise the documented API host.
	BaseURL string
	Client  *Client // shared by every adapter of the process; required
	Options Options
	// Platform is the registry entry (limits, capabilities); filled by Registry.Open.
	Platform Platform
}

// Options are the ESP layer's operator settings (the foundation's config is glued to this struct).
type Options struct {
	// BaseURLs overrides a platform's base URL by slug (fakes, sandboxes, regional hosts).
	BaseURLs map[string]string
	// Revisions pins a platform's API version by slug where it has one (Klaviyo's `revision` header).
	// Missing entries use the version the adapter was written against.
	Revisions map[string]string
	// PageSize overrides the page size by slug (0 or missing = the platform's maximum). Meant for tests.
	PageSize map[string]int
}

func (o Options) revision(slug, def string) string {
	if r := o.Revisions[slug]; r != "" {
		return r
	}
	return def
}

func (o Options) pageSize(slug string, max int) int {
	if n := o.PageSize[slug]; n > 0 && n <= max {
		return n
	}
	return max
}

// CredentialError says which credential field is wrong and why. It never contains the value.
type CredentialError struct {
	Field string
	// Code is the API's error code: "missing_credentials" or "invalid_credentials_format".
	Code   string
	Reason string
}

func (e *CredentialError) Error() string {
	return fmt.Sprintf("esp: credential %q: %s", e.Field, e.Reason)
}

// Registry is the immutable table of the 18 platform types.
type Registry struct {
	list   []Platform
	bySlug map[string]int
	alias  map[string]string
}

// Platforms returns the registry of all 18 platforms (a fresh value each call; it holds no state).
func Platforms() *Registry {
	r := &Registry{list: platforms(), bySlug: map[string]int{}, alias: map[string]string{"sendinblue": "brevo", "kit": "convertkit", "infusionsoft": "keap"}}
	for i, p := range r.list {
		r.bySlug[p.Slug] = i
	}
	return r
}

// All returns every platform in display order.
func (r *Registry) All() []Platform { return append([]Platform(nil), r.list...) }

// Lookup finds a platform by its exact slug.
func (r *Registry) Lookup(slug string) (Platform, bool) {
	i, ok := r.bySlug[slug]
	if !ok {
		return Platform{}, false
	}
	return r.list[i], true
}

// Alias maps a former or informal name (sendinblue, kit, infusionsoft) to the canonical slug, so the API can
// say "use brevo". ok is false when slug is no known alias. Aliases are never accepted as slugs.
func (r *Registry) Alias(slug string) (canonical string, ok bool) {
	c, ok := r.alias[strings.ToLower(slug)]
	return c, ok
}

// Validate checks credentials for a platform and returns them normalised (defaults filled in, values
// trimmed). override is the operator's base-URL override for the platform ("" when none): a URL inside the
// credentials that matches it is accepted even off the platform's domains. Errors are *CredentialError.
func (p Platform) Validate(creds map[string]string, override string) (map[string]string, error) {
	out := make(map[string]string, len(p.Fields))
	known := map[string]bool{}
	for _, f := range p.Fields {
		known[f.Name] = true
		v, present := creds[f.Name]
		v = strings.TrimSpace(v)
		if !present || v == "" {
			if f.Optional {
				if f.Default != "" {
					out[f.Name] = f.Default
				}
				continue
			}
			reason := "is required"
			if present {
				reason = "must not be empty"
			}
			return nil, &CredentialError{Field: f.Name, Code: "missing_credentials", Reason: reason}
		}
		if len(f.Enum) > 0 && !contains(f.Enum, v) {
			return nil, &CredentialError{Field: f.Name, Code: "invalid_credentials_format", Reason: "must be one of " + strings.Join(f.Enum, ", ")}
		}
		// Any control character (DEL included): Go's HTTP client refuses such a header value, which would
		// surface as "platform unreachable" instead of a format error (found by FuzzConnectBody).
		if strings.ContainsFunc(v, unicode.IsControl) {
			return nil, &CredentialError{Field: f.Name, Code: "invalid_credentials_format", Reason: "contains control characters"}
		}
		out[f.Name] = v
	}
	var unknown []string
	for k := range creds {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, &CredentialError{Field: unknown[0], Code: "invalid_credentials_format", Reason: "is not a credential field of " + p.Slug}
	}
	if p.check != nil {
		if err := p.check(out, override); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Open validates creds and builds the platform's adapter with the operator's options.
func (r *Registry) Open(slug string, creds map[string]string, c *Client, o Options) (Adapter, error) {
	p, ok := r.Lookup(slug)
	if !ok {
		return nil, fmt.Errorf("esp: unknown platform %q", slug)
	}
	if p.New == nil {
		return nil, fmt.Errorf("esp: %s: no adapter yet", slug)
	}
	if c == nil {
		return nil, fmt.Errorf("esp: %s: nil client", slug)
	}
	override := o.BaseURLs[slug]
	v, err := p.Validate(creds, override)
	if err != nil {
		return nil, err
	}
	a, err := p.New(Config{Credentials: v, BaseURL: override, Client: c, Options: o, Platform: p})
	if err != nil {
		return nil, err
	}
	return checked{Adapter: a, slug: slug}, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func key(name, label string) CredentialField {
	return CredentialField{Name: name, Label: label, Secret: true}
}
func plain(name, label string) CredentialField { return CredentialField{Name: name, Label: label} }

var apiKey = key("api_key", "API key")

// platforms is the registry table: ONE entry per platform. Adding an adapter sets its New field.
func platforms() []Platform {
	return []Platform{
		{Slug: "klaviyo", Name: "Klaviyo", Fields: []CredentialField{key("api_key", "Private API key")}, Connectable: true,
			Limits: Limits{Rate: 700.0 / 60, Burst: 75}, Capabilities: Capabilities{ChangedSince: true},
			New: newKlaviyo},
		{Slug: "mailchimp", Name: "Mailchimp", Fields: []CredentialField{apiKey}, Connectable: true,
			Limits: Limits{Concurrency: 10}, Capabilities: Capabilities{ChangedSince: true},
			check: checkMailchimp,
			New:   newMailchimp},
		{Slug: "brevo", Name: "Brevo", Fields: []CredentialField{apiKey}, Connectable: true,
			Limits: Limits{Rate: 10, Burst: 10}, Capabilities: Capabilities{ChangedSince: true, TotalKnown: true},
			New: newBrevo},
		{Slug: "activecampaign", Name: "ActiveCampaign", Fields: []CredentialField{plain("api_url", "API URL"), apiKey}, Connectable: true,
			Limits: Limits{Rate: 5, Burst: 5}, Capabilities: Capabilities{ChangedSince: true, TotalKnown: true},
			check: checkActiveCampaign,
			New:   newActiveCampaign},
		{Slug: "convertkit", Name: "Kit (ConvertKit)", Fields: []CredentialField{apiKey, key("api_secret", "API secret")}, Connectable: true,
			Limits: Limits{Rate: 1.95, Burst: 2}, Capabilities: Capabilities{ChangedSince: true, TotalKnown: true, NoDelete: true},
			New: newConvertKit},
		{Slug: "mailerlite", Name: "MailerLite", Fields: []CredentialField{apiKey}, Connectable: true,
			Limits: Limits{Rate: 1.95, Burst: 2}, Capabilities: Capabilities{},
			New: newMailerlite},
		{Slug: "getresponse", Name: "GetResponse", Fields: []CredentialField{apiKey}, Connectable: true,
			Limits: Limits{Rate: 49, Burst: 80, Concurrency: 10}, Capabilities: Capabilities{ChangedSince: true, TotalKnown: true},
			New: newGetresponse},
		{Slug: "campaignmonitor", Name: "Campaign Monitor", Fields: []CredentialField{apiKey, plain("client_id", "Client ID")}, Connectable: true,
			Limits: Limits{Rate: 10, Burst: 10}, Capabilities: Capabilities{},
			New: newCampaignmonitor},
		{Slug: "constantcontact", Name: "Constant Contact", Fields: []CredentialField{key("access_token", "Access token"), key("refresh_token", "Refresh token")}, Connectable: false,
			Limits: Limits{Rate: 4, Burst: 4}, Capabilities: Capabilities{ChangedSince: true},
			New: newConstantContact},
		{Slug: "drip", Name: "Drip", Fields: []CredentialField{apiKey, plain("account_id", "Account ID")}, Connectable: true,
			Limits: Limits{Rate: 0.99, Burst: 10}, Capabilities: Capabilities{TotalKnown: true},
			New: newDrip},
		{Slug: "gist", Name: "Gist", Fields: []CredentialField{apiKey}, Connectable: true,
			Limits: Limits{Rate: 5, Burst: 5}, Capabilities: Capabilities{Tags: true},
			New: newGist},
		{Slug: "hubspot", Name: "HubSpot", Fields: []CredentialField{key("access_token", "Private app access token")}, Connectable: true,
			Limits: Limits{Rate: 9, Burst: 10}, Capabilities: Capabilities{ChangedSince: true},
			New: newHubSpot},
		{Slug: "keap", Name: "Keap (Infusionsoft)", Fields: []CredentialField{key("api_key", "Personal access token or service account key")}, Connectable: true,
			Limits: Limits{Rate: 3.8, Burst: 10}, Capabilities: Capabilities{ChangedSince: true, Tags: true},
			New: newKeap},
		{Slug: "moosend", Name: "Moosend", Fields: []CredentialField{apiKey}, Connectable: true,
			Limits: Limits{Rate: 5, Burst: 5}, Capabilities: Capabilities{},
			New: newMoosend},
		{Slug: "ontraport", Name: "Ontraport", Fields: []CredentialField{plain("app_id", "App ID"), apiKey}, Connectable: true,
			Limits: Limits{Rate: 2.9, Burst: 6}, Capabilities: Capabilities{ChangedSince: true, Tags: true},
			New: newOntraport},
		{Slug: "sendlane", Name: "Sendlane", Fields: []CredentialField{apiKey}, Connectable: true,
			Limits: Limits{Rate: 3.9, Burst: 6}, Capabilities: Capabilities{Tags: true},
			New: newSendlane},
		{Slug: "iterable", Name: "Iterable", Fields: []CredentialField{apiKey, {Name: "region", Label: "Region", Optional: true, Default: "us", Enum: []string{"us", "eu"}}}, Connectable: true,
			Limits: Limits{Rate: 50, Burst: 50}, Capabilities: Capabilities{ChangedSince: true},
			New: newIterable},
		{Slug: "customerio", Name: "Customer.io", Fields: []CredentialField{key("app_api_key", "App API key"), plain("site_id", "Site ID"), key("track_api_key", "Track API key"), {Name: "region", Label: "Region", Enum: []string{"us", "eu"}}}, Connectable: true,
			Limits: Limits{Rate: 10, Burst: 10}, Capabilities: Capabilities{},
			New: newCustomerio},
	}
}

var mailchimpDC = regexp.MustCompile(`^[a-z]{2,4}[0-9]{1,3}$`) // us19, eu1, …

// MailchimpDC returns the data centre of a Mailchimp key (the part after its last '-').
func MailchimpDC(key string) (string, bool) {
	i := strings.LastIndexByte(key, '-')
	if i <= 0 || i == len(key)-1 {
		return "", false
	}
	dc := key[i+1:]
	if !mailchimpDC.MatchString(dc) {
		return "", false
	}
	return dc, true
}

func checkMailchimp(c map[string]string, _ string) error {
	if _, ok := MailchimpDC(c["api_key"]); !ok {
		return &CredentialError{Field: "api_key", Code: "invalid_credentials_format", Reason: "must end in -<dc> (the data centre, e.g. -us19)"}
	}
	return nil
}

// activeCampaignDomains are the platform's own API hosts (SSRF guard): api_url must be https on one of them.
var activeCampaignDomains = []string{"api-us1.com", "activehosted.com", "api-us2.com", "api-eu1.com"}

func checkActiveCampaign(c map[string]string, override string) error {
	bad := func(why string) error {
		return &CredentialError{Field: "api_url", Code: "invalid_credentials_format", Reason: why}
	}
	u, err := url.Parse(c["api_url"])
	if err != nil || u.Host == "" {
		return bad("must be an absolute URL")
	}
	if u.User != nil {
		return bad("must not contain user info")
	}
	if override != "" {
		if o, err := url.Parse(override); err == nil && strings.EqualFold(o.Scheme, u.Scheme) && strings.EqualFold(o.Host, u.Host) {
			return nil
		}
	}
	if u.Scheme != "https" {
		return bad("must be https")
	}
	if u.Port() != "" && u.Port() != "443" {
		return bad("must use the default https port")
	}
	host := strings.ToLower(u.Hostname())
	for _, d := range activeCampaignDomains {
		if strings.HasSuffix(host, "."+d) {
			return nil
		}
	}
	return bad("must be on ActiveCampaign's own domains (*.api-us1.com, *.activehosted.com)")
}
