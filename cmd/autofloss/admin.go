package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/autofloss/autofloss/internal/app"
	"github.com/autofloss/autofloss/store"
)

// flags starts a command's flag set with the shared -config flag.
func flags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, fs.String("config", "", "config file (default $AUTOFLOSS_CONFIG or ./config.yaml)")
}

// parse parses flags and rejects stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}

// openStore starts the app without Redis (admin commands only touch the store).
func openStore(ctx context.Context, cfg string, stderr io.Writer) (*app.App, error) {
	return app.Start(ctx, app.Options{ConfigPath: cfg, LogOutput: stderr, Component: "cli", NoRedis: true})
}

func runMigrate(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("migrate", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	a, err := openStore(ctx, *cfg, stderr) // Start migrates
	if err != nil {
		return err
	}
	defer a.Close()
	v, err := a.Store.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database (%s) at schema version %d\n", a.Store.Dialect(), v)
	return nil
}

func runAccountsCreate(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("accounts create", stderr)
	name := fs.String("name", "", "account name (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" {
		return errUsage
	}
	a, err := openStore(ctx, *cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	acc, err := a.Store.CreateAccount(ctx, *name)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, acc.ID)
	return nil
}

func runAccountsList(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("accounts list", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	a, err := openStore(ctx, *cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	accs, err := a.Store.ListAccounts(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREDITS\tCREATED")
	for _, acc := range accs {
		bal, err := a.Store.Balance(ctx, acc.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", acc.ID, acc.Name, bal, acc.CreatedAt.Format("2006-01-02T15:04:05Z"))
	}
	return tw.Flush()
}

func runAPIKeysCreate(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("apikeys create", stderr)
	account := fs.String("account", "", "account id (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *account == "" {
		return errUsage
	}
	a, err := openStore(ctx, *cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	plain, key, err := a.Store.CreateAPIKey(ctx, *account)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no account %s", *account)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, plain)
	fmt.Fprintf(stderr, "key id %s — the key above is shown only this once; store it now\n", key.ID)
	return nil
}

func runAPIKeysRevoke(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("apikeys revoke", stderr)
	id := fs.String("id", "", "key id (key_…) (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *id == "" {
		return errUsage
	}
	a, err := openStore(ctx, *cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	key, err := a.Store.RevokeAPIKey(ctx, *id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no API key %s", *id)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked %s (%s…) at %s\n", key.ID, key.Prefix, key.RevokedAt.Format("2006-01-02T15:04:05Z"))
	return nil
}

func runAPIKeysList(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("apikeys list", stderr)
	account := fs.String("account", "", "account id (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *account == "" {
		return errUsage
	}
	a, err := openStore(ctx, *cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	keys, err := a.Store.ListAPIKeys(ctx, *account)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPREFIX\tCREATED\tREVOKED")
	for _, k := range keys {
		revoked := "-"
		if k.RevokedAt != nil {
			revoked = k.RevokedAt.Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(tw, "%s\t%s…\t%s\t%s\n", k.ID, k.Prefix, k.CreatedAt.Format("2006-01-02T15:04:05Z"), revoked)
	}
	return tw.Flush()
}

func runCreditsAdd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("credits add", stderr)
	account := fs.String("account", "", "account id (required)")
	amount := fs.Int64("amount", 0, "credits to add, > 0 (required)")
	ref := fs.String("ref", "", "idempotency reference, e.g. an order id: the same ref is applied once")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *account == "" || *amount <= 0 {
		return errUsage
	}
	a, err := openStore(ctx, *cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	bal, err := a.Store.AddCredits(ctx, *account, *amount, *ref, "grant")
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no account %s", *account)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "balance %d\n", bal)
	return nil
}

func runCreditsShow(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("credits show", stderr)
	account := fs.String("account", "", "account id (required)")
	n := fs.Int("n", 10, "ledger entries to show")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *account == "" {
		return errUsage
	}
	a, err := openStore(ctx, *cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	bal, err := a.Store.Balance(ctx, *account)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no account %s", *account)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "balance %d\n", bal)
	entries, _, err := a.Store.Ledger(ctx, *account, store.Page{Limit: *n})
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nWHEN\tDELTA\tBALANCE\tREASON\tREF")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%+d\t%d\t%s\t%s\n", e.CreatedAt.Format("2006-01-02T15:04:05Z"), e.Delta, e.BalanceAfter, e.Reason, e.Ref)
	}
	return tw.Flush()
}

func runSecretsRotate(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("secrets rotate", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	a, err := openStore(ctx, *cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	n, err := a.Store.RotateCredentials(ctx)
	if err != nil {
		return fmt.Errorf("re-sealed %d before failing: %w", n, err)
	}
	fmt.Fprintf(stdout, "re-sealed %d credential(s) with key %s\n", n, a.Keys.ActiveID())
	return nil
}

func runSecretsGenerate(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("secrets generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(k))
	return nil
}
