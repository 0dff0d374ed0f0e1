// Package config holds autofloss's one typed configuration: defaults that run on a laptop, the config.yaml
// file, AUTOFLOSS_<SECTION>_<KEY> environment overrides, and validation that names the offending key.
//
// Order of precedence (later wins): embedded defaults (Default), the YAML file, the environment.
// A missing file is not an error (the defaults run); an unknown key in the file is.
//
// Environment names are built from the YAML path: AUTOFLOSS_ + section + _ + key, upper-cased, e.g.
// AUTOFLOSS_REDIS_URL, AUTOFLOSS_LOG_FORMAT, AUTOFLOSS_WORKER_QUEUES_CRITICAL. Per-platform ESP settings use
// the platform slug as the key: AUTOFLOSS_ESP_KLAVIYO_BASE_URL, AUTOFLOSS_ESP_KLAVIYO_RATE_PER_SECOND,
// AUTOFLOSS_ESP_KLAVIYO_BURST, AUTOFLOSS_ESP_KLAVIYO_REVISION. Lists are comma-separated
// (AUTOFLOSS_VERIFY_DNS_SERVERS=1.1.1.1:53,8.8.8.8:53); the secret key ring is
// AUTOFLOSS_SECRETS_KEYS=id1:base64key,id2:base64key with AUTOFLOSS_SECRETS_ACTIVE_ID=id2.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPath is the environment variable naming the config file when no -config flag is given.
const EnvPath = "AUTOFLOSS_CONFIG"

// DefaultPath is the config file read when neither -config nor AUTOFLOSS_CONFIG says otherwise.
const DefaultPath = "./config.yaml"

// Platforms are the 18 ESP slugs that may carry per-platform settings under `esp:`. The esp package owns
// the registry; this list only lets config reject typos and build the environment names.
var Platforms = []string{
	"klaviyo", "mailchimp", "brevo", "activecampaign", "convertkit", "mailerlite", "getresponse",
	"campaignmonitor", "constantcontact", "drip", "gist", "hubspot", "keap", "moosend", "ontraport",
	"sendlane", "iterable", "customerio",
}

// Config is the whole configuration.
type Config struct {
	Server    Server    `yaml:"server"`
	Redis     Redis     `yaml:"redis"`
	Database  Database  `yaml:"database"`
	Secrets   Secrets   `yaml:"secrets"`
	Scheduler Scheduler `yaml:"scheduler"`
	Worker    Worker    `yaml:"worker"`
	ESP       ESP       `yaml:"esp"`
	Verify    Verify    `yaml:"verify"`
	Credits   Credits   `yaml:"credits"`
	Log       Log       `yaml:"log"`
	Sandbox   Sandbox   `yaml:"sandbox"`
}

// Server configures the HTTP API process.
type Server struct {
	Listen             string        `yaml:"listen"`                // address the API listens on
	MaxBodyBytes       int64         `yaml:"max_body_bytes"`        // request bodies above this get 413
	RateLimitPerMinute int           `yaml:"rate_limit_per_minute"` // requests per API key per minute
	AdminToken         string        `yaml:"admin_token"`           // bearer token for /ops/queues/; empty disables the dashboard
	IdempotencyTTL     time.Duration `yaml:"idempotency_ttl"`       // how long an Idempotency-Key response is kept
	ReadTimeout        time.Duration `yaml:"read_timeout"`
	WriteTimeout       time.Duration `yaml:"write_timeout"`
	ShutdownTimeout    time.Duration `yaml:"shutdown_timeout"` // graceful drain on SIGTERM
}

// Redis locates the Redis that carries the asynq queues.
type Redis struct {
	URL string `yaml:"url"` // redis://[:password@]host:port/db
}

// Database selects the store: `sqlite:<path>` (default) or `postgres://…`.
type Database struct {
	URL string `yaml:"url"`
}

// Secrets is the key ring that seals stored credentials (AES-256-GCM).
//
// When Keys is empty, a key is generated once into KeyFile (mode 0600) and reused on every start, with a
// warning in the log: fine for a laptop, but production must configure keys (a lost key file makes every
// stored credential unreadable).
type Secrets struct {
	Keys     []SecretKey `yaml:"keys"`
	ActiveID string      `yaml:"active_id"` // the key new seals use; defaults to the last key listed
	KeyFile  string      `yaml:"key_file"`  // used only when Keys is empty
}

// SecretKey is one key of the ring: an id stored beside each ciphertext and a base64 32-byte key.
type SecretKey struct {
	ID  string `yaml:"id"`
	Key string `yaml:"key"`
}

// Scheduler configures the cron that enqueues due floss runs.
type Scheduler struct {
	Tick                string        `yaml:"tick"`                  // robfig/cron spec, e.g. "@every 1m"
	FlossInterval       time.Duration `yaml:"floss_interval"`        // a connection is due this long after its last sync
	VerifyFirstInterval time.Duration `yaml:"verify_first_interval"` // polling interval for verify_first connections without webhooks
	BatchSize           int           `yaml:"batch_size"`            // due connections selected per query
	IncrementalLookback time.Duration `yaml:"incremental_lookback"`  // incremental runs read from last_synced_at minus this
}

// Worker configures the asynq server.
type Worker struct {
	Concurrency     int           `yaml:"concurrency"`
	Queues          QueueWeights  `yaml:"queues"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MetricsListen is where a standalone worker (cmd/worker) serves /metrics, /healthz and /readyz;
	// "" disables it. `autofloss serve` exposes the pipeline's metrics on the API's /metrics instead.
	MetricsListen string `yaml:"metrics_listen"`
}

// QueueWeights are asynq's weighted-priority weights.
type QueueWeights struct {
	Critical int `yaml:"critical"`
	Default  int `yaml:"default"`
	Low      int `yaml:"low"`
}

// ESP configures the platform clients. Platforms holds the per-slug settings, written in YAML directly
// under `esp:` (`esp: {klaviyo: {base_url: …}}`).
type ESP struct {
	Timeout    time.Duration `yaml:"timeout"`     // per HTTP request
	MaxRetries int           `yaml:"max_retries"` // on throttling, 5xx and timeouts
	// RetryBaseDelay is the first backoff of those retries; each next one doubles, with jitter.
	RetryBaseDelay time.Duration       `yaml:"retry_base_delay"`
	Platforms      map[string]Platform `yaml:"-"`
}

// Platform is one platform's override. Zero values mean "the platform registry's default".
type Platform struct {
	BaseURL       string  `yaml:"base_url"`        // e.g. a fake or a regional host; also the one SSRF exception
	RatePerSecond float64 `yaml:"rate_per_second"` // steady request rate per platform account
	Burst         int     `yaml:"burst"`
	Revision      string  `yaml:"revision"` // API version pin where the platform has one (klaviyo)
}

// Verify configures the verification engine.
type Verify struct {
	DNSServers         []string      `yaml:"dns_servers"` // host:port; empty = the system's resolvers
	DNSTimeout         time.Duration `yaml:"dns_timeout"`
	DNSCacheTTL        time.Duration `yaml:"dns_cache_ttl"`    // positive answers
	DNSNegativeTTL     time.Duration `yaml:"dns_negative_ttl"` // NXDOMAIN / no data
	SMTPPort           int           `yaml:"smtp_port"`
	HeloName           string        `yaml:"helo_name"`
	MailFrom           string        `yaml:"mail_from"`
	ConnectTimeout     time.Duration `yaml:"connect_timeout"` // SMTP dial + greeting
	CommandTimeout     time.Duration `yaml:"command_timeout"` // each SMTP command
	PerHostConcurrency int           `yaml:"per_host_concurrency"`
	// HostPorts is not configurable: `serve -sandbox` sets it at run time to the loopback world's SMTP port
	// per exchanger host (verify.Options.HostPorts).
	HostPorts map[string]int `yaml:"-"`
}

// Credits configures billing rules.
type Credits struct {
	ReverifyWindow time.Duration `yaml:"reverify_window"` // a result younger than this is reused at no cost
}

// Log configures zerolog.
type Log struct {
	Level  string `yaml:"level"`  // trace|debug|info|warn|error
	Format string `yaml:"format"` // json|console
}

// Sandbox runs `autofloss serve` against loopback fakes of the platforms and a loopback DNS+SMTP world,
// with a demo account (package sandbox): the quick start of `make run`. Nothing in sandbox mode reaches
// the internet.
type Sandbox struct {
	Enabled  bool  `yaml:"enabled"`
	Contacts int   `yaml:"contacts"` // seeded contacts per platform fake
	Credits  int64 `yaml:"credits"`  // the demo account is topped up to this balance at start
	// RealLimits makes the fakes enforce (and the client keep) each platform's own rate limits; off, both
	// are lifted so a demo run finishes in seconds.
	RealLimits bool `yaml:"real_limits"`
}

// Default returns the embedded defaults: SQLite under ./var, Redis on localhost, JSON logs.
func Default() Config {
	return Config{
		Server: Server{
			Listen: ":8080", MaxBodyBytes: 1 << 20, RateLimitPerMinute: 10000,
			IdempotencyTTL: 24 * time.Hour, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
			ShutdownTimeout: 10 * time.Second,
		},
		Redis:    Redis{URL: "redis://127.0.0.1:6379/0"},
		Database: Database{URL: "sqlite:./var/autofloss.db"},
		Secrets:  Secrets{KeyFile: "./var/secret.key"},
		Scheduler: Scheduler{
			Tick: "@every 1m", FlossInterval: 24 * time.Hour, VerifyFirstInterval: 5 * time.Minute,
			BatchSize: 2000, IncrementalLookback: time.Hour,
		},
		Worker: Worker{
			Concurrency: 10, Queues: QueueWeights{Critical: 6, Default: 3, Low: 1},
			ShutdownTimeout: 30 * time.Second, MetricsListen: ":9091",
		},
		ESP: ESP{
			Timeout: 30 * time.Second, MaxRetries: 5, RetryBaseDelay: 500 * time.Millisecond,
			Platforms: map[string]Platform{"klaviyo": {Revision: "2026-07-15"}},
		},
		Verify: Verify{
			DNSTimeout: 5 * time.Second, DNSCacheTTL: time.Hour, DNSNegativeTTL: 5 * time.Minute,
			SMTPPort: 25, HeloName: "verify.autofloss.localhost", MailFrom: "probe@verify.autofloss.localhost",
			ConnectTimeout: 10 * time.Second, CommandTimeout: 10 * time.Second, PerHostConcurrency: 2,
		},
		Credits: Credits{ReverifyWindow: 30 * 24 * time.Hour},
		Log:     Log{Level: "info", Format: "json"},
		Sandbox: Sandbox{Contacts: 3000, Credits: 100000},
	}
}

// Platform returns the settings of one slug (zero value when none are configured).
func (e ESP) Platform(slug string) Platform { return e.Platforms[slug] }

// UnmarshalYAML reads the fixed keys and the per-platform maps that sit beside them.
func (e *ESP) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("esp: must be a mapping")
	}
	if e.Platforms == nil {
		e.Platforms = map[string]Platform{}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i].Value, n.Content[i+1]
		var err error
		switch key {
		case "timeout":
			err = val.Decode(&e.Timeout)
		case "max_retries":
			err = val.Decode(&e.MaxRetries)
		case "retry_base_delay":
			err = val.Decode(&e.RetryBaseDelay)
		default:
			if !isPlatform(key) {
				return fmt.Errorf("esp.%s: unknown key (not a setting nor one of the 18 platform slugs)", key)
			}
			p := e.Platforms[key]
			err = decodeStrict(val, &p)
			e.Platforms[key] = p
		}
		if err != nil {
			return fmt.Errorf("esp.%s: %w", key, err)
		}
	}
	return nil
}

// decodeStrict decodes a node and rejects unknown keys.
func decodeStrict(n *yaml.Node, out any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	return d.Decode(out)
}

func isPlatform(s string) bool {
	for _, p := range Platforms {
		if p == s {
			return true
		}
	}
	return false
}

// PathFrom returns the config path: the flag value if set, else AUTOFLOSS_CONFIG, else DefaultPath.
func PathFrom(flagValue string, getenv func(string) string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := getenv(EnvPath); v != "" {
		return v
	}
	return DefaultPath
}

// Load reads defaults, then the file at path (a missing file keeps the defaults), then the environment
// through getenv (os.Getenv in production), and validates the result.
func Load(path string, getenv func(string) string) (Config, error) {
	cfg := Default()
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Config{}, fmt.Errorf("config: read %s: %w", path, err)
	default:
		if err := Parse(b, &cfg); err != nil {
			return Config{}, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, getenv); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Parse decodes YAML onto cfg (which holds the defaults), rejecting unknown keys.
func Parse(b []byte, cfg *Config) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(cfg); err != nil {
		return err
	}
	return nil
}

// applyEnv walks the struct and applies AUTOFLOSS_<PATH> variables.
func applyEnv(cfg *Config, getenv func(string) string) error {
	if err := envStruct(reflect.ValueOf(cfg).Elem(), "AUTOFLOSS", "", getenv); err != nil {
		return err
	}
	// Per-platform ESP settings.
	for _, slug := range Platforms {
		p := cfg.ESP.Platforms[slug]
		before := p
		if err := envStruct(reflect.ValueOf(&p).Elem(), "AUTOFLOSS_ESP_"+strings.ToUpper(slug), "esp."+slug, getenv); err != nil {
			return err
		}
		if p != before {
			if cfg.ESP.Platforms == nil {
				cfg.ESP.Platforms = map[string]Platform{}
			}
			cfg.ESP.Platforms[slug] = p
		}
	}
	if err := applyHostPortsEnv(cfg, getenv); err != nil {
		return err
	}
	// The key ring.
	if v := getenv("AUTOFLOSS_SECRETS_KEYS"); v != "" {
		var keys []SecretKey
		for _, part := range strings.Split(v, ",") {
			id, key, ok := strings.Cut(strings.TrimSpace(part), ":")
			if !ok {
				return fmt.Errorf("config: secrets.keys (AUTOFLOSS_SECRETS_KEYS): each entry must be id:base64key")
			}
			keys = append(keys, SecretKey{ID: id, Key: key})
		}
		cfg.Secrets.Keys = keys
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func envStruct(v reflect.Value, envPrefix, keyPrefix string, getenv func(string) string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		env := envPrefix + "_" + strings.ToUpper(tag)
		key := tag
		if keyPrefix != "" {
			key = keyPrefix + "." + tag
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			if err := envStruct(fv, env, key, getenv); err != nil {
				return err
			}
			continue
		}
		if fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() != reflect.String {
			continue // secrets.keys: handled by applyEnv
		}
		raw := getenv(env)
		if raw == "" {
			continue
		}
		if err := setValue(fv, raw); err != nil {
			return fmt.Errorf("config: %s (%s): %w", key, env, err)
		}
	}
	return nil
}

func setValue(fv reflect.Value, raw string) error {
	if fv.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("must be a duration like 30s or 5m, got %q", raw)
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", raw)
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("must be an integer, got %q", raw)
		}
		fv.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("must be a number, got %q", raw)
		}
		fv.SetFloat(n)
	case reflect.Slice:
		if fv.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot be set from the environment")
		}
		var out []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		fv.Set(reflect.ValueOf(out))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// EnvNames lists every environment variable Load reads, sorted (used by the README reference and tests).
func EnvNames() []string {
	var names []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			name := prefix + "_" + strings.ToUpper(tag)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, name)
				continue
			}
			names = append(names, name)
		}
	}
	walk(reflect.TypeOf(Config{}), "AUTOFLOSS")
	for _, slug := range Platforms {
		walk(reflect.TypeOf(Platform{}), "AUTOFLOSS_ESP_"+strings.ToUpper(slug))
	}
	sort.Strings(names)
	return names
}
