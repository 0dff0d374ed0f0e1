package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"

	"github.com/autofloss/autofloss/internal/app"
	"github.com/autofloss/autofloss/sandbox"
)

// startSandbox runs serve's sandbox mode when on (the -sandbox flag or sandbox.enabled): it starts the
// platform fakes and the mail world on loopback, points the running config at them (base-URL overrides,
// verify DNS and SMTP ports), turns the asynqmon dashboard on with a fresh admin token when none is
// configured, makes sure the demo account exists with credits, and prints the quick start (with a new API
// key) on stdout. Call it after app.Start and before anything is built from a.Config. stop is never nil.
func startSandbox(ctx context.Context, a *app.App, on bool, stdout io.Writer) (stop func(), err error) {
	if !on && !a.Config.Sandbox.Enabled {
		return func() {}, nil
	}
	sc := a.Config.Sandbox
	sb, err := sandbox.Start(sandbox.Options{Contacts: sc.Contacts, RealLimits: sc.RealLimits, Logger: a.Log})
	if err != nil {
		return nil, err
	}
	sb.Apply(&a.Config)
	a.Config.Sandbox.Enabled = true
	if a.Config.Server.AdminToken == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			sb.Close()
			return nil, err
		}
		a.Config.Server.AdminToken = hex.EncodeToString(b[:])
	}
	demo, err := sandbox.EnsureDemo(ctx, a.Store, sc.Credits)
	if err != nil {
		sb.Close()
		return nil, err
	}
	a.Log.Info().Str("account", demo.AccountID).Int64("credits", demo.Balance).Msg("sandbox demo account ready (API key printed on stdout)")
	sb.PrintBanner(stdout, demo, sandbox.BaseURL(a.Config.Server.Listen), a.Config.Server.AdminToken)
	return sb.Close, nil
}

// runDemo is `autofloss demo`: serve with a local Redis and the sandbox on, the same as `make run`.
func runDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runServe(ctx, append([]string{"-local-redis", "-sandbox"}, args...), stdin, stdout, stderr)
}
