package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Validate checks every value; the error names the first offending key, e.g.
// `config: log.format: must be json or console, got "xml"`.
func (c Config) Validate() error {
	var errs []string
	bad := func(key, format string, a ...any) {
		errs = append(errs, "config: "+key+": "+fmt.Sprintf(format, a...))
	}
	positiveDur := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be a positive duration, got %s", d)
		}
	}
	positiveInt := func(key string, n int64) {
		if n <= 0 {
			bad(key, "must be greater than 0, got %d", n)
		}
	}

	// server
	if _, port, err := net.SplitHostPort(c.Server.Listen); err != nil || port == "" {
		bad("server.listen", "must be host:port or :port, got %q", c.Server.Listen)
	}
	positiveInt("server.max_body_bytes", c.Server.MaxBodyBytes)
	positiveInt("server.rate_limit_per_minute", int64(c.Server.RateLimitPerMinute))
	positiveDur("server.idempotency_ttl", c.Server.IdempotencyTTL)
	positiveDur("server.read_timeout", c.Server.ReadTimeout)
	positiveDur("server.write_timeout", c.Server.WriteTimeout)
	positiveDur("server.shutdown_timeout", c.Server.ShutdownTimeout)

	// redis
	if u, err := url.Parse(c.Redis.URL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		bad("redis.url", "must be redis://host:port[/db], got %q", c.Redis.URL)
	}

	// database
	if _, _, err := ParseDatabaseURL(c.Database.URL); err != nil {
		bad("database.url", "%v", err)
	}

	// secrets
	seen := map[string]bool{}
	for i, k := range c.Secrets.Keys {
		key := fmt.Sprintf("secrets.keys[%d]", i)
		if k.ID == "" || strings.ContainsAny(k.ID, ": ,") {
			bad(key+".id", "must be a non-empty id without ':', ',' or spaces, got %q", k.ID)
		}
		if seen[k.ID] {
			bad(key+".id", "duplicate key id %q", k.ID)
		}
		seen[k.ID] = true
		if b, err := base64.StdEncoding.DecodeString(k.Key); err != nil || len(b) != 32 {
			bad(key+".key", "must be 32 bytes, base64-encoded") // never echo key material
		}
	}
	if c.Secrets.ActiveID != "" && !seen[c.Secrets.ActiveID] {
		bad("secrets.active_id", "must name one of secrets.keys, got %q", c.Secrets.ActiveID)
	}
	if len(c.Secrets.Keys) == 0 && c.Secrets.KeyFile == "" {
		bad("secrets.key_file", "must be set when secrets.keys is empty")
	}

	// scheduler
	if _, err := cron.ParseStandard(c.Scheduler.Tick); err != nil {
		bad("scheduler.tick", "must be a cron spec like \"@every 1m\" or \"*/5 * * * *\", got %q", c.Scheduler.Tick)
	}
	positiveDur("scheduler.floss_interval", c.Scheduler.FlossInterval)
	positiveDur("scheduler.verify_first_interval", c.Scheduler.VerifyFirstInterval)
	positiveInt("scheduler.batch_size", int64(c.Scheduler.BatchSize))
	if c.Scheduler.IncrementalLookback < 0 {
		bad("scheduler.incremental_lookback", "must not be negative, got %s", c.Scheduler.IncrementalLookback)
	}

	// worker
	positiveInt("worker.concurrency", int64(c.Worker.Concurrency))
	positiveInt("worker.queues.critical", int64(c.Worker.Queues.Critical))
	positiveInt("worker.queues.default", int64(c.Worker.Queues.Default))
	positiveInt("worker.queues.low", int64(c.Worker.Queues.Low))
	positiveDur("worker.shutdown_timeout", c.Worker.ShutdownTimeout)

	// esp
	positiveDur("esp.timeout", c.ESP.Timeout)
	if c.ESP.RetryBaseDelay <= 0 {
		bad("esp.retry_base_delay", "must be positive, got %s", c.ESP.RetryBaseDelay)
	}
	if c.ESP.MaxRetries < 0 {
		bad("esp.max_retries", "must not be negative, got %d", c.ESP.MaxRetries)
	}
	for _, slug := range Platforms {
		p, ok := c.ESP.Platforms[slug]
		if !ok {
			continue
		}
		if p.BaseURL != "" {
			if u, err := url.Parse(p.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("esp."+slug+".base_url", "must be an http(s) URL, got %q", p.BaseURL)
			}
		}
		if p.RatePerSecond < 0 {
			bad("esp."+slug+".rate_per_second", "must not be negative, got %g", p.RatePerSecond)
		}
		if p.Burst < 0 {
			bad("esp."+slug+".burst", "must not be negative, got %d", p.Burst)
		}
		if p.Revision != "" {
			if _, err := time.Parse("2006-01-02", p.Revision); err != nil {
				bad("esp."+slug+".revision", "must be a date YYYY-MM-DD, got %q", p.Revision)
			}
		}
	}
	for slug := range c.ESP.Platforms {
		if !isPlatform(slug) {
			bad("esp."+slug, "unknown platform slug")
		}
	}

	// verify
	for i, s := range c.Verify.DNSServers {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			bad(fmt.Sprintf("verify.dns_servers[%d]", i), "must be host:port, got %q", s)
		}
	}
	positiveDur("verify.dns_timeout", c.Verify.DNSTimeout)
	positiveDur("verify.dns_cache_ttl", c.Verify.DNSCacheTTL)
	positiveDur("verify.dns_negative_ttl", c.Verify.DNSNegativeTTL)
	if c.Verify.SMTPPort <= 0 || c.Verify.SMTPPort > 65535 {
		bad("verify.smtp_port", "must be 1..65535, got %d", c.Verify.SMTPPort)
	}
	if c.Verify.HeloName == "" || strings.ContainsAny(c.Verify.HeloName, " \t\r\n") {
		bad("verify.helo_name", "must be a host name, got %q", c.Verify.HeloName)
	}
	if at := strings.LastIndexByte(c.Verify.MailFrom, '@'); at <= 0 || at == len(c.Verify.MailFrom)-1 ||
		strings.ContainsAny(c.Verify.MailFrom, " \t\r\n<>") {
		bad("verify.mail_from", "must be an address like probe@example.com")
	}
	positiveDur("verify.connect_timeout", c.Verify.ConnectTimeout)
	positiveDur("verify.command_timeout", c.Verify.CommandTimeout)
	positiveInt("verify.per_host_concurrency", int64(c.Verify.PerHostConcurrency))

	// credits
	if c.Credits.ReverifyWindow < 0 {
		bad("credits.reverify_window", "must not be negative, got %s", c.Credits.ReverifyWindow)
	}

	// log
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be trace, debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		bad("log.format", "must be json or console, got %q", c.Log.Format)
	}

	// sandbox
	if c.Sandbox.Contacts < 0 || c.Sandbox.Contacts > 1000000 {
		bad("sandbox.contacts", "must be between 0 and 1000000, got %d", c.Sandbox.Contacts)
	}
	if c.Sandbox.Credits < 0 {
		bad("sandbox.credits", "must not be negative, got %d", c.Sandbox.Credits)
	}

	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Database drivers ParseDatabaseURL can select.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// ParseDatabaseURL splits a database URL into its driver and the rest: `sqlite:<path>` (also
// `sqlite://<path>`) gives ("sqlite", path); `postgres://…` or `postgresql://…` gives ("postgres", url).
func ParseDatabaseURL(raw string) (driver, target string, err error) {
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		target = strings.TrimPrefix(raw, "sqlite://")
		driver = DriverSQLite
	case strings.HasPrefix(raw, "sqlite:"):
		target = strings.TrimPrefix(raw, "sqlite:")
		driver = DriverSQLite
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, perr := url.Parse(raw); perr != nil {
			return "", "", fmt.Errorf("must be a valid postgres:// URL")
		}
		return DriverPostgres, raw, nil
	default:
		return "", "", fmt.Errorf("must start with sqlite: or postgres://, got %q", redactURL(raw))
	}
	if target == "" {
		return "", "", fmt.Errorf("sqlite: needs a file path, e.g. sqlite:./var/autofloss.db")
	}
	return driver, target, nil
}

// redactURL hides a password in a URL so errors never print it.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
