package jobs

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/config"
	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/espconfig"
	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifycli"
)

// Deps are the floss pipeline's dependencies. Build them once per process: the esp.Client holds one rate
// limiter per platform account, so every run and write-back of an account in this process shares it.
type Deps struct {
	Store    *store.Store
	Registry *esp.Registry
	Client   *esp.Client
	ESP      esp.Options // base-URL overrides, revisions, page sizes
	Engine   *verify.Engine
	Log      zerolog.Logger
	Metrics  *Metrics // nil: no metrics
	Settings Settings
	Now      func() time.Time // nil: time.Now
	// Enqueuer is used by floss:verify_contact to hand a contact it cannot read alone to a sync run of its
	// connection (platforms without a changed-since filter). nil: such contacts wait for the scheduler.
	Enqueuer Enqueuer
}

// Settings are the pipeline's operator settings.
type Settings struct {
	IncrementalLookback time.Duration // incremental runs read from last_synced_at minus this
	ReverifyWindow      time.Duration // a result younger than this is reused at no cost
	LeaseTTL            time.Duration // per-connection lease; renewed every third of it (0 = 60 s)
	WriteConcurrency    int           // write-backs in flight per page (0 = 8); the account's limiter still rules
	Holder              string        // this process's lease identity ("" = host-pid-random)
	// ScanPages bounds how many pages floss:verify_contact reads to find its contact (0 = 200).
	ScanPages int
}

func (d *Deps) defaults() error {
	if d.Store == nil || d.Registry == nil || d.Client == nil || d.Engine == nil {
		return errors.New("jobs: Store, Registry, Client and Engine are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Settings.LeaseTTL <= 0 {
		d.Settings.LeaseTTL = 60 * time.Second
	}
	if d.Settings.WriteConcurrency <= 0 {
		d.Settings.WriteConcurrency = 8
	}
	if d.Settings.ScanPages <= 0 {
		d.Settings.ScanPages = 200
	}
	if d.Settings.Holder == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		d.Settings.Holder = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return nil
}

// DepsFromConfig builds the pipeline's dependencies from the config: the registry, ONE shared esp.Client
// (its Observer feeding m), the verify engine. close releases the engine's pooled SMTP sessions.
func DepsFromConfig(cfg config.Config, st *store.Store, log zerolog.Logger, m *Metrics) (Deps, func(), error) {
	opts, copts := espconfig.Options(cfg.ESP)
	if m != nil {
		copts.Observer = m.Observer()
	}
	vo := verifycli.Options(cfg.Verify)
	vo.Logger = log
	eng, err := verify.New(vo)
	if err != nil {
		return Deps{}, nil, err
	}
	d := Deps{
		Store: st, Registry: esp.Platforms(), Client: esp.NewClient(copts), ESP: opts, Engine: eng, Log: log, Metrics: m,
		Settings: Settings{IncrementalLookback: cfg.Scheduler.IncrementalLookback, ReverifyWindow: cfg.Credits.ReverifyWindow},
	}
	return d, eng.Close, nil
}

// OnFailure actions (api.md "The connection object").
const (
	OnFailureUpdateFields = "update_fields"
	OnFailureUnsubscribe  = "unsubscribe"
	OnFailureDelete       = "delete"
	OnFailureNone         = "none"
)

// cnxSettings is the part of a connection's settings document the pipeline reads. Missing or unknown
// values take the API's defaults (normal preset, update_fields).
type cnxSettings struct {
	Policy      policy.Settings
	VerifyFirst bool
	OnFailure   string
}

func parseSettings(raw json.RawMessage) cnxSettings {
	var in struct {
		Aggressiveness string          `json:"aggressiveness"`
		VerifyFirst    *bool           `json:"verify_first"`
		Checks         map[string]bool `json:"checks"`
		OnFailure      string          `json:"on_failure"`
	}
	_ = json.Unmarshal(raw, &in)
	s := cnxSettings{Policy: policy.Settings{Aggressiveness: policy.PresetNormal}, VerifyFirst: true, OnFailure: OnFailureUpdateFields}
	if policy.IsPreset(in.Aggressiveness) {
		s.Policy.Aggressiveness = in.Aggressiveness
	}
	s.Policy.Checks = in.Checks
	if in.VerifyFirst != nil {
		s.VerifyFirst = *in.VerifyFirst
	}
	switch in.OnFailure {
	case OnFailureUpdateFields, OnFailureUnsubscribe, OnFailureDelete, OnFailureNone:
		s.OnFailure = in.OnFailure
	}
	return s
}

func compileRules(rs []store.Rule) *policy.Rules {
	var white, black []policy.Rule
	for _, r := range rs {
		pr := policy.Rule{Keyword: r.Keyword, MatchOn: policy.MatchOn(r.MatchOn)}
		if r.List == store.Whitelist {
			white = append(white, pr)
		} else {
			black = append(black, pr)
		}
	}
	return policy.CompileRules(white, black)
}
