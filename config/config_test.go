package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/autofloss/autofloss/config"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRepoConfigEqualsDefaults(t *testing.T) {
	got, err := config.Load("../config.yaml", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	if want.Secrets.Keys == nil {
		want.Secrets.Keys = []config.SecretKey{}
	}
	if want.Verify.DNSServers == nil {
		want.Verify.DNSServers = []string{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("config.yaml differs from Default():\n got %+v\nwant %+v", got, want)
	}
}

func TestLoad(t *testing.T) {
	cases := []struct {
		name  string
		file  string // "" = no file at all
		env   map[string]string
		check func(t *testing.T, c config.Config)
	}{
		{
			name: "missing file gives defaults",
			check: func(t *testing.T, c config.Config) {
				if !reflect.DeepEqual(c, config.Default()) {
					t.Fatalf("got %+v", c)
				}
			},
		},
		{
			name: "file values",
			file: "redis:\n  url: redis://10.0.0.1:6380/2\nlog:\n  format: console\nesp:\n  mailchimp:\n    base_url: http://127.0.0.1:9999\n    burst: 7\nworker:\n  queues: {critical: 9}\nverify:\n  dns_servers: [\"127.0.0.1:53\"]\n",
			check: func(t *testing.T, c config.Config) {
				if c.Redis.URL != "redis://10.0.0.1:6380/2" || c.Log.Format != "console" {
					t.Fatalf("got %+v %+v", c.Redis, c.Log)
				}
				if p := c.ESP.Platform("mailchimp"); p.BaseURL != "http://127.0.0.1:9999" || p.Burst != 7 {
					t.Fatalf("mailchimp = %+v", p)
				}
				if c.ESP.Platform("klaviyo").Revision != "2026-07-15" {
					t.Fatalf("klaviyo default revision lost: %+v", c.ESP.Platforms)
				}
				if c.Worker.Queues != (config.QueueWeights{Critical: 9, Default: 3, Low: 1}) {
					t.Fatalf("queues = %+v", c.Worker.Queues)
				}
				if !reflect.DeepEqual(c.Verify.DNSServers, []string{"127.0.0.1:53"}) {
					t.Fatalf("dns = %v", c.Verify.DNSServers)
				}
			},
		},
		{
			name: "env overrides file",
			file: "log:\n  format: console\n",
			env: map[string]string{
				"AUTOFLOSS_LOG_FORMAT":                      "json",
				"AUTOFLOSS_REDIS_URL":                       "redis://127.0.0.1:7000/1",
				"AUTOFLOSS_ESP_KLAVIYO_BASE_URL":            "http://127.0.0.1:8123",
				"AUTOFLOSS_ESP_CUSTOMERIO_RATE_PER_SECOND":  "2.5",
				"AUTOFLOSS_ESP_CUSTOMERIO_BURST":            "4",
				"AUTOFLOSS_SCHEDULER_VERIFY_FIRST_INTERVAL": "90s",
				"AUTOFLOSS_WORKER_QUEUES_LOW":               "2",
				"AUTOFLOSS_SANDBOX_ENABLED":                 "true",
				"AUTOFLOSS_VERIFY_DNS_SERVERS":              "127.0.0.1:5353, 127.0.0.2:53",
				"AUTOFLOSS_SECRETS_KEYS":                    "a:" + strings.Repeat("A", 43) + "=,b:" + strings.Repeat("B", 43) + "=",
				"AUTOFLOSS_SECRETS_ACTIVE_ID":               "a",
			},
			check: func(t *testing.T, c config.Config) {
				if c.Log.Format != "json" || c.Redis.URL != "redis://127.0.0.1:7000/1" {
					t.Fatalf("got %+v %+v", c.Log, c.Redis)
				}
				if p := c.ESP.Platform("klaviyo"); p.BaseURL != "http://127.0.0.1:8123" || p.Revision != "2026-07-15" {
					t.Fatalf("klaviyo = %+v", p)
				}
				if p := c.ESP.Platform("customerio"); p.RatePerSecond != 2.5 || p.Burst != 4 {
					t.Fatalf("customerio = %+v", p)
				}
				if c.Scheduler.VerifyFirstInterval != 90*time.Second || c.Worker.Queues.Low != 2 || !c.Sandbox.Enabled {
					t.Fatalf("got %+v %+v %+v", c.Scheduler, c.Worker, c.Sandbox)
				}
				if !reflect.DeepEqual(c.Verify.DNSServers, []string{"127.0.0.1:5353", "127.0.0.2:53"}) {
					t.Fatalf("dns = %v", c.Verify.DNSServers)
				}
				if len(c.Secrets.Keys) != 2 || c.Secrets.Keys[1].ID != "b" || c.Secrets.ActiveID != "a" {
					t.Fatalf("keys = %+v", c.Secrets)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.yaml")
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			c, err := config.Load(path, envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestLoadRejects(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  map[string]string
		want string
	}{
		{"bad log format in file", "log:\n  format: xml\n", nil, `config: log.format: must be json or console, got "xml"`},
		{"bad log format in env", "", map[string]string{"AUTOFLOSS_LOG_FORMAT": "xml"}, `config: log.format: must be json or console, got "xml"`},
		{"unknown key", "server:\n  listne: \":80\"\n", nil, "listne"},
		{"unknown platform", "esp:\n  sendinblue:\n    burst: 1\n", nil, "esp.sendinblue"},
		{"bad duration env", "", map[string]string{"AUTOFLOSS_SCHEDULER_FLOSS_INTERVAL": "often"}, "scheduler.floss_interval (AUTOFLOSS_SCHEDULER_FLOSS_INTERVAL): must be a duration"},
		{"bad int env", "", map[string]string{"AUTOFLOSS_ESP_BREVO_BURST": "many"}, "esp.brevo.burst (AUTOFLOSS_ESP_BREVO_BURST): must be an integer"},
		{"negative concurrency", "worker:\n  concurrency: 0\n", nil, "config: worker.concurrency: must be greater than 0"},
		{"bad database url", "database:\n  url: mysql://x\n", nil, "config: database.url: must start with sqlite: or postgres://"},
		{"bad redis url", "", map[string]string{"AUTOFLOSS_REDIS_URL": "localhost"}, "config: redis.url"},
		{"bad cron", "scheduler:\n  tick: sometimes\n", nil, "config: scheduler.tick"},
		{"short secret key", "secrets:\n  keys: [{id: k1, key: c2hvcnQ=}]\n", nil, "config: secrets.keys[0].key: must be 32 bytes"},
		{"active id unknown", "", map[string]string{"AUTOFLOSS_SECRETS_ACTIVE_ID": "nope"}, "config: secrets.active_id"},
		{"bad base url", "", map[string]string{"AUTOFLOSS_ESP_HUBSPOT_BASE_URL": "ftp://x"}, "config: esp.hubspot.base_url"},
		{"bad smtp port", "verify:\n  smtp_port: 70000\n", nil, "config: verify.smtp_port"},
		{"bad revision", "esp:\n  klaviyo:\n    revision: latest\n", nil, "config: esp.klaviyo.revision"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.yaml")
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			_, err := config.Load(path, envOf(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestPathFromAndEnvNames(t *testing.T) {
	if got := config.PathFrom("x.yaml", envOf(map[string]string{config.EnvPath: "y.yaml"})); got != "x.yaml" {
		t.Fatal(got)
	}
	if got := config.PathFrom("", envOf(map[string]string{config.EnvPath: "y.yaml"})); got != "y.yaml" {
		t.Fatal(got)
	}
	if got := config.PathFrom("", envOf(nil)); got != config.DefaultPath {
		t.Fatal(got)
	}
	names := strings.Join(config.EnvNames(), " ")
	for _, want := range []string{"AUTOFLOSS_REDIS_URL", "AUTOFLOSS_LOG_FORMAT", "AUTOFLOSS_ESP_SENDLANE_BURST", "AUTOFLOSS_WORKER_QUEUES_CRITICAL", "AUTOFLOSS_SECRETS_KEYS"} {
		if !strings.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
}

// TestREADMEDocumentsEveryKey keeps the README's configuration reference complete.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, name := range config.EnvNames() {
		for _, slug := range config.Platforms {
			name = strings.Replace(name, "AUTOFLOSS_ESP_"+strings.ToUpper(slug)+"_", "AUTOFLOSS_ESP_<SLUG>_", 1)
		}
		if !strings.Contains(readme, "`"+name+"`") {
			t.Errorf("README.md lacks %s", name)
		}
	}
}
