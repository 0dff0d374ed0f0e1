// Package sandbox brings up autofloss's self-contained demo world on loopback: the esptest fake of every
// platform that has one, seeded with deterministic, realistic contacts, and a DNS+SMTP mail world
// (verifytest.World behind a small DNS front) for the verification engine — so `autofloss serve -sandbox`
// (`make run`) can connect platforms, floss them and write back without anything reaching the internet.
//
// Decisions where the spec is silent:
//   - Fakes listen on random loopback ports; the running config's base-URL overrides point at them, so a
//     connection stored in an earlier sandbox session keeps working (its credentials are deterministic: the
//     same seed gives the same fake keys on every start).
//   - By default the fakes' and the client's rate limits are lifted so a demo run over a few thousand
//     contacts takes seconds; Options.RealLimits keeps each platform's own.
//   - The engine options returned by EngineOptions use only the world's DNS and dial only loopback.
package sandbox

import (
	"fmt"
	"hash/fnv"
	"net"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/config"
	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/verify"
)

// DefaultContacts is the number of contacts seeded per platform when Options.Contacts is 0.
const DefaultContacts = 3000

// Options configure a sandbox.
type Options struct {
	Contacts   int  // per platform; 0: DefaultContacts
	RealLimits bool // fakes enforce the platforms' own limits and Apply keeps the client's
	Logger     zerolog.Logger
}

// Platform is one running platform fake.
type Platform struct {
	Slug string
	Name string // display name from the esp registry
	URL  string // the fake's base URL (the base-URL override)
	// Credentials are the fake's valid credentials, as POST /v1/integrations/{slug}/connections takes them.
	Credentials map[string]string
	// Connectable: the platform has an adapter in this build (otherwise the API answers 422 on connect).
	Connectable bool
	Fake        *esptest.Fake
}

// Sandbox is a running sandbox. Close stops everything.
type Sandbox struct {
	Platforms []Platform // in the esp registry's display order
	World     *World
	Contacts  int

	engine     verify.Options
	realLimits bool
	nowhere    string // base URL for platforms without a fake: a closed loopback port
}

// Slugs returns every platform slug that has a fake, in the esp registry's display order.
func Slugs() []string {
	var out []string
	for _, p := range esp.Platforms().All() {
		if _, ok := esptest.Lookup(p.Slug); ok {
			out = append(out, p.Slug)
		}
	}
	return out
}

// SeedFor is the seed number of a platform's fake: stable per slug, so contacts and fake keys are the same
// on every start.
func SeedFor(slug string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("autofloss-sandbox/" + slug))
	return int64(h.Sum64() >> 1)
}

// Start brings up the world and one fake per platform that has one. On error everything started is stopped.
func Start(o Options) (*Sandbox, error) {
	if o.Contacts <= 0 {
		o.Contacts = DefaultContacts
	}
	sb := &Sandbox{Contacts: o.Contacts, realLimits: o.RealLimits}
	ok := false
	defer func() {
		if !ok {
			sb.Close()
		}
	}()
	w, err := StartWorld()
	if err != nil {
		return nil, err
	}
	sb.World = w
	if sb.engine, err = w.EngineOptions(); err != nil {
		return nil, err
	}
	reg := esp.Platforms()
	for _, slug := range Slugs() {
		fo := esptest.Options{Seed: SeedOptions(o.Contacts, SeedFor(slug))}
		if !o.RealLimits {
			fo.Limits = &esp.Limits{}
		}
		f, err := esptest.Start(slug, fo)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %s fake: %w", slug, err)
		}
		p, _ := reg.Lookup(slug)
		sb.Platforms = append(sb.Platforms, Platform{
			Slug: slug, Name: p.Name, URL: f.URL(), Credentials: f.Credentials(true),
			Connectable: p.New != nil && p.Connectable, Fake: f,
		})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sb.nowhere = "http://" + ln.Addr().String()
	_ = ln.Close()
	o.Logger.Info().Int("platforms", len(sb.Platforms)).Int("contacts_per_platform", o.Contacts).
		Str("dns", w.Resolver).Msg("sandbox started: platform fakes and the mail world on loopback")
	ok = true
	return sb, nil
}

// Platform returns the running fake of slug.
func (sb *Sandbox) Platform(slug string) (Platform, bool) {
	for _, p := range sb.Platforms {
		if p.Slug == slug {
			return p, true
		}
	}
	return Platform{}, false
}

// EngineOptions are the verification engine options of sandbox mode (see World.EngineOptions). Lists is
// shared; HostPorts and DNSServers are fresh copies.
func (sb *Sandbox) EngineOptions() verify.Options {
	o := sb.engine
	o.DNSServers = append([]string(nil), o.DNSServers...)
	hp := make(map[string]int, len(o.HostPorts))
	for k, v := range o.HostPorts {
		hp[k] = v
	}
	o.HostPorts = hp
	return o
}

// sandboxRate is the client's limit per platform account in sandbox mode without real limits.
var sandboxRate = esp.Limits{Rate: 1000, Burst: 200}

// Apply points a running config at the sandbox: every faked platform's base-URL override is its fake;
// (without real limits) the client's per-platform limits are lifted; the verify section's DNS servers are
// the world's front only, its HostPorts the world's SMTP ports and its timeouts loopback-short, so an
// engine built from the config (verifycli.Options) asks nothing but the world. A platform without a fake
// gets a closed loopback port as its base URL: connecting it fails as unavailable instead of reaching the
// real platform.
func (sb *Sandbox) Apply(cfg *config.Config) {
	if cfg.ESP.Platforms == nil {
		cfg.ESP.Platforms = map[string]config.Platform{}
	}
	for _, p := range sb.Platforms {
		c := cfg.ESP.Platforms[p.Slug]
		c.BaseURL = p.URL
		if !sb.realLimits {
			c.RatePerSecond, c.Burst = sandboxRate.Rate, sandboxRate.Burst
		}
		cfg.ESP.Platforms[p.Slug] = c
	}
	for _, slug := range config.Platforms {
		if _, faked := sb.Platform(slug); !faked {
			c := cfg.ESP.Platforms[slug]
			c.BaseURL = sb.nowhere
			cfg.ESP.Platforms[slug] = c
		}
	}
	v := sb.EngineOptions()
	cfg.Verify.DNSServers = v.DNSServers
	cfg.Verify.HostPorts = v.HostPorts
	cfg.Verify.DNSTimeout = time.Second
	cfg.Verify.ConnectTimeout, cfg.Verify.CommandTimeout = 2*time.Second, 2*time.Second
}

// Close stops every fake and the world. Safe to call twice.
func (sb *Sandbox) Close() {
	for _, p := range sb.Platforms {
		_ = p.Fake.Close()
	}
	sb.Platforms = nil
	if sb.World != nil {
		sb.World.Close()
		sb.World = nil
	}
}

// sortedKeys returns the keys of m in order (for stable output).
func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
