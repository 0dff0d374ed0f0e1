// Package verifycli implements the admin CLI commands that touch the
// verification engine: `autofloss verify <address>…` (JSON lines, one per
// address, also from stdin) and `autofloss lists update|sizes`. The binary's
// command table in cmd/autofloss calls Run and RunLists.
package verifycli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/config"
	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/verify"
)

// Options maps the config file's verify section onto engine options.
func Options(c config.Verify) verify.Options {
	return verify.Options{
		DNSServers:         c.DNSServers,
		DNSTimeout:         c.DNSTimeout,
		PositiveTTL:        c.DNSCacheTTL,
		NegativeTTL:        c.DNSNegativeTTL,
		SMTPPort:           c.SMTPPort,
		HELO:               c.HeloName,
		MailFrom:           c.MailFrom,
		ConnectTimeout:     c.ConnectTimeout,
		StepTimeout:        c.CommandTimeout,
		PerHostConcurrency: c.PerHostConcurrency,
		HostPorts:          c.HostPorts,
	}
}

// Line is one output line of `autofloss verify`.
type Line struct {
	verify.Result
	Passed bool   `json:"passed"`
	Mode   string `json:"mode"`
}

const batchSize = 500

// Run is `autofloss verify [flags] <address>…`: it prints one JSON line per
// address, in input order. With no address, or with "-", addresses are read
// from stdin, one per line (blank lines skipped), and verified in batches so
// addresses of one domain share DNS answers and SMTP sessions.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default $AUTOFLOSS_CONFIG or ./config.yaml)")
	mode := fs.String("mode", policy.PresetAggressive, "gates that decide \"passed\" and which checks run: normal | aggressive")
	dnsServers := fs.String("dns-servers", "", "comma-separated host:port resolvers (overrides config)")
	smtpPort := fs.Int("smtp-port", 0, "SMTP port to probe (overrides config)")
	noSMTP := fs.Bool("no-smtp", false, "skip the SMTP mailbox probe")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: autofloss verify [flags] <address>… | -   (no address: read stdin)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mode != policy.PresetNormal && *mode != policy.PresetAggressive {
		return fmt.Errorf("verify: -mode must be normal or aggressive")
	}
	cfg, err := config.Load(config.PathFrom(*cfgPath, os.Getenv), os.Getenv)
	if err != nil {
		return err
	}
	o := Options(cfg.Verify)
	if *dnsServers != "" {
		o.DNSServers = strings.Split(*dnsServers, ",")
	}
	if *smtpPort > 0 {
		o.SMTPPort = *smtpPort
	}
	o.Logger = zerolog.New(stderr).Level(zerolog.WarnLevel)
	return RunWith(ctx, o, *mode, *noSMTP, fs.Args(), stdin, stdout)
}

// RunWith is Run after flag parsing (tests and the sandbox use it with their own options).
func RunWith(ctx context.Context, o verify.Options, mode string, noSMTP bool, addrs []string, stdin io.Reader, stdout io.Writer) error {
	e, err := verify.New(o)
	if err != nil {
		return err
	}
	settings := policy.Settings{Aggressiveness: mode}
	want := policy.WantedChecks(settings)
	if noSMTP {
		want = want.Without(verify.ReasonNonexistent, verify.ReasonInboxFull, verify.ReasonDeactivated,
			verify.ReasonAcceptAll, verify.ReasonUnverified, verify.ReasonFailedExchange)
	}
	enc := json.NewEncoder(stdout)
	flush := func(batch []string) error {
		ins := make([]verify.Input, len(batch))
		for i, a := range batch {
			ins[i] = verify.Input{Email: a}
		}
		for _, r := range e.VerifyBatch(ctx, ins, want) {
			d := policy.Decide(r, settings, nil)
			if err := enc.Encode(Line{Result: r, Passed: d.Passed, Mode: mode}); err != nil {
				return err
			}
		}
		return ctx.Err()
	}
	fromStdin := len(addrs) == 0
	var args []string
	for _, a := range addrs {
		if a == "-" {
			fromStdin = true
			continue
		}
		args = append(args, a)
	}
	if len(args) > 0 {
		if err := flush(args); err != nil {
			return err
		}
	}
	if !fromStdin {
		return nil
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var batch []string
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			batch = append(batch, l)
		}
		if len(batch) == batchSize {
			if err := flush(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return flush(batch)
	}
	return nil
}

// RunLists is `autofloss lists update --kind <kind> --from <file|url> [--dir d]`
// (normalises the list and writes <dir>/<kind>.txt with its source and date;
// engines built with verify.LoadLists(dir) use it, and a rebuild embeds it
// when dir is verify/data) and `autofloss lists sizes [--dir d]`.
func RunLists(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: autofloss lists update --kind <kind> --from <file|url> [--dir verify/data] | lists sizes [--dir d]")
		return errors.New("lists: missing subcommand")
	}
	fs := flag.NewFlagSet("lists "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("kind", "", "list kind: disposable, free, role, banned, spamtrap, parking, popular, providers")
	from := fs.String("from", "", "file path or http(s) URL (JSON array or one entry per line)")
	dir := fs.String("dir", "verify/data", "directory of list files")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "update":
		if *kind == "" || *from == "" {
			return errors.New("lists update: --kind and --from are required")
		}
		entries, err := verify.LoadListFile(ctx, verify.ListKind(*kind), *from)
		if err != nil {
			return fmt.Errorf("lists update: %w", err)
		}
		if len(entries) == 0 {
			return errors.New("lists update: the source has no valid entries; list left unchanged")
		}
		p, err := verify.WriteListFile(*dir, verify.ListKind(*kind), entries, *from, time.Now())
		if err != nil {
			return fmt.Errorf("lists update: %w", err)
		}
		fmt.Fprintf(stdout, "%s: %d entries written to %s\n", *kind, len(entries), p)
		return nil
	case "sizes":
		l, err := verify.LoadLists(*dir)
		if err != nil {
			return err
		}
		for _, k := range verify.ListKinds() {
			fmt.Fprintf(stdout, "%s\t%d\n", k, l.Size(k))
		}
		return nil
	}
	return fmt.Errorf("lists: unknown subcommand %q", args[0])
}
