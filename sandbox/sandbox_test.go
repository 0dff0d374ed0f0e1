package sandbox_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/config"
	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/sandbox"
	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifycli"
)

func start(t *testing.T, contacts int) *sandbox.Sandbox {
	t.Helper()
	sb, err := sandbox.Start(sandbox.Options{Contacts: contacts, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	return sb
}

func isLoopback(t *testing.T, hostport string) bool {
	t.Helper()
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TestStartFakesAnswerTheirOwnAuth: one fake per platform that has one, on loopback, seeded as asked; the
// printed credentials pass the platform adapter's live check against its fake and wrong ones are refused.
func TestStartFakesAnswerTheirOwnAuth(t *testing.T) {
	sb := start(t, 200)
	want := sandbox.Slugs()
	if len(want) == 0 || len(sb.Platforms) != len(want) {
		t.Fatalf("platforms %d, fakes %v", len(sb.Platforms), want)
	}
	reg := esp.Platforms()
	client := esp.NewClient(esp.ClientOptions{Retry: esp.Retry{MaxAttempts: 1}, RequestTimeout: 10 * time.Second})
	ctx := context.Background()
	connectable := 0
	for i, p := range sb.Platforms {
		if p.Slug != want[i] {
			t.Fatalf("platform %d is %s, want %s", i, p.Slug, want[i])
		}
		u, err := url.Parse(p.URL)
		if err != nil || !isLoopback(t, u.Host) {
			t.Fatalf("%s: fake not on loopback: %q", p.Slug, p.URL)
		}
		if p.Fake.N() != 200 || len(p.Credentials) == 0 {
			t.Fatalf("%s: %d contacts, credentials %v", p.Slug, p.Fake.N(), len(p.Credentials))
		}
		if !p.Connectable {
			t.Logf("%s: fake running, not connectable through the API", p.Slug)
			continue
		}
		connectable++
		o := esp.Options{BaseURLs: map[string]string{p.Slug: p.URL}}
		ad, err := reg.Open(p.Slug, p.Credentials, client, o)
		if err != nil {
			t.Fatalf("%s: open with the printed credentials: %v", p.Slug, err)
		}
		lists, err := ad.Lists(ctx)
		if err != nil || len(lists) == 0 {
			t.Fatalf("%s: lists with the printed credentials: %v %v", p.Slug, lists, err)
		}
		bad, err := reg.Open(p.Slug, p.Fake.Credentials(false), client, o)
		if err == nil {
			_, err = bad.Lists(ctx)
		}
		if !errors.Is(err, esp.ErrCredentialsRejected) {
			t.Fatalf("%s: wrong credentials: got %v, want credentials rejected", p.Slug, err)
		}
	}
	if connectable == 0 {
		t.Fatal("no connectable platform in the sandbox")
	}
	// Same seed on every start: credentials are stable, so stored connections survive a restart.
	again := start(t, 200)
	for i, p := range again.Platforms {
		if !maps.Equal(p.Credentials, sb.Platforms[i].Credentials) || p.Fake.Seeded(7).Email != sb.Platforms[i].Fake.Seeded(7).Email {
			t.Fatalf("%s: a second start differs", p.Slug)
		}
	}
}

// TestApplyPointsConfigAtSandbox: base-URL overrides, lifted limits and the world's DNS, nothing else.
func TestApplyPointsConfigAtSandbox(t *testing.T) {
	sb := start(t, 60)
	cfg := config.Default()
	cfg.ESP.Platforms["hubspot"] = config.Platform{BaseURL: "https://example.invalid"}
	sb.Apply(&cfg)
	for _, p := range sb.Platforms {
		c := cfg.ESP.Platforms[p.Slug]
		if c.BaseURL != p.URL || c.RatePerSecond <= 0 {
			t.Fatalf("%s: %+v", p.Slug, c)
		}
	}
	// Every one of the 18 platforms, faked or not, is pointed at loopback: nothing reaches a real platform.
	for _, slug := range config.Platforms {
		u, err := url.Parse(cfg.ESP.Platforms[slug].BaseURL)
		if err != nil || !isLoopback(t, u.Host) {
			t.Fatalf("%s: base URL %q is not loopback", slug, cfg.ESP.Platforms[slug].BaseURL)
		}
	}
	if cfg.ESP.Platforms["klaviyo"].Revision != "2026-07-15" {
		t.Fatal("klaviyo revision lost")
	}
	if len(cfg.Verify.DNSServers) != 1 || cfg.Verify.DNSServers[0] != sb.World.Resolver {
		t.Fatalf("dns servers %v", cfg.Verify.DNSServers)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	// The engine a process builds from this config (config → verifycli.Options → verify.New) asks only the
	// world: loopback DNS, the world's SMTP ports; a seeded good contact is valid, a bad-domain one is not.
	o := verifycli.Options(cfg.Verify)
	for _, s := range o.DNSServers {
		if !isLoopback(t, s) {
			t.Fatalf("non-loopback DNS server %s", s)
		}
	}
	if len(o.HostPorts) == 0 {
		t.Fatal("no SMTP host ports")
	}
	e, err := verify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	f := sb.Platforms[0].Fake
	found := map[esptest.Kind]bool{}
	ctx := context.Background()
	for i := 0; i < f.N(); i++ {
		c := f.Seeded(i)
		if (c.Kind != esptest.KindGood && c.Kind != esptest.KindBadDomain) || found[c.Kind] {
			continue
		}
		found[c.Kind] = true
		r := e.Verify(ctx, verify.Input{Email: c.Email, PlatformStatus: string(c.Status)}, verify.AllChecks)
		if want := sandbox.ExpectedReason(c.Kind, true); r.Reason != want {
			t.Fatalf("%s contact: %s, want %s (%+v)", c.Kind, r.Reason, want, r.Evidence)
		}
	}
	if !found[esptest.KindGood] || !found[esptest.KindBadDomain] {
		t.Fatalf("seed lacks kinds: %v", found)
	}
}

// TestEngineUsesOnlyTheWorld: the engine options name loopback servers only and the dialer refuses
// everything else; an address on a real internet domain is decided by the world (never the internet).
func TestEngineUsesOnlyTheWorld(t *testing.T) {
	sb := start(t, 10)
	o := sb.EngineOptions()
	if len(o.DNSServers) == 0 {
		t.Fatal("no DNS servers: the engine would fall back to the system's")
	}
	for _, s := range o.DNSServers {
		if !isLoopback(t, s) {
			t.Fatalf("non-loopback DNS server %s", s)
		}
	}
	if o.Dial == nil {
		t.Fatal("no dialer guard")
	}
	ctx := context.Background()
	for _, addr := range []string{"8.8.8.8:25", "[2001:4860:4860::8888]:25", "example.com:25", "10.0.0.1:25"} {
		if c, err := o.Dial(ctx, "tcp", addr); !errors.Is(err, sandbox.ErrNotLoopback) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("dial %s: %v", addr, err)
		}
	}
	// Every exchanger the world names is dialled on loopback through the guard.
	for host, port := range o.HostPorts {
		if port <= 0 {
			t.Fatalf("%s: port %d", host, port)
		}
	}
	e, err := verify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	before := sb.World.DNSQueries()
	r := e.Verify(ctx, verify.Input{Email: "someone@example.com"}, verify.AllChecks)
	if r.Reason != verify.ReasonIllegitimate || len(r.Evidence.MX) != 0 {
		t.Fatalf("example.com resolved somewhere: %s %v", r.Reason, r.Evidence.MX)
	}
	if sb.World.DNSQueries() == before {
		t.Fatal("the world's DNS was not asked")
	}
}

// TestSeededContactsClassify: for every kind, seeded contacts of every fake come out of a sandbox engine
// as ExpectedReason says, under the aggressive and the normal preset.
func TestSeededContactsClassify(t *testing.T) {
	sb := start(t, 300)
	e, err := verify.New(sb.EngineOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	presets := map[string]verify.Checks{
		policy.PresetAggressive: verify.AllChecks,
		policy.PresetNormal:     policy.WantedChecks(policy.Settings{Aggressiveness: policy.PresetNormal}),
	}
	var ins []verify.Input
	var kinds []esptest.Kind
	seen := map[esptest.Kind]int{}
	for _, p := range sb.Platforms {
		for i := 0; i < p.Fake.N(); i++ {
			c := p.Fake.Seeded(i)
			if seen[c.Kind] >= 8 {
				continue
			}
			seen[c.Kind]++
			ins = append(ins, verify.Input{Email: c.Email, PlatformStatus: string(c.Status)})
			kinds = append(kinds, c.Kind)
		}
	}
	for _, k := range esptest.Kinds {
		if seen[k] == 0 {
			t.Fatalf("no seeded contact of kind %s", k)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for name, checks := range presets {
		rs := e.VerifyBatch(ctx, ins, checks)
		for i, r := range rs {
			want := sandbox.ExpectedReason(kinds[i], name == policy.PresetAggressive)
			if r.Reason != want {
				t.Errorf("%s: %s contact (%s): got %s, want %s (evidence %+v)", name, kinds[i], r.Domain, r.Reason, want, r.Evidence)
			}
			if kinds[i] == esptest.KindTypo && r.Suggestion == "" {
				t.Errorf("typo contact @%s without a suggestion", r.Domain)
			}
		}
	}
}

// TestCloseStopsEverything: after Close nothing answers on the fakes' ports or the world's resolver.
func TestCloseStopsEverything(t *testing.T) {
	sb, err := sandbox.Start(sandbox.Options{Contacts: 10})
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, p := range sb.Platforms {
		u, _ := url.Parse(p.URL)
		addrs = append(addrs, u.Host)
	}
	resolver := sb.World.Resolver
	worldDNS := sb.World.World.DNSAddr
	sb.Close()
	sb.Close() // twice is fine
	for _, a := range append(addrs, resolver, worldDNS) {
		if c, err := net.DialTimeout("tcp", a, 500*time.Millisecond); err == nil {
			c.Close()
			t.Fatalf("%s still accepts connections", a)
		}
	}
	m := new(dns.Msg)
	m.SetQuestion("good.test.", dns.TypeMX)
	if _, _, err := (&dns.Client{Timeout: 300 * time.Millisecond}).Exchange(m, resolver); err == nil {
		t.Fatal("resolver still answers")
	}
}

// TestREADMEQuickStart: the README's quick start uses the klaviyo fake's real (deterministic) key.
func TestREADMEQuickStart(t *testing.T) {
	sb := start(t, 1)
	p, ok := sb.Platform("klaviyo")
	if !ok {
		t.Fatal("no klaviyo fake")
	}
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := `"credentials":{"api_key":"` + p.Credentials["api_key"] + `"}`
	if !strings.Contains(string(b), want) {
		t.Fatalf("README.md quick start lacks %s", want)
	}
}
