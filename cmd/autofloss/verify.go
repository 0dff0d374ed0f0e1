package main

import (
	"context"
	"io"

	"github.com/autofloss/autofloss/verify/verifycli"
)

// runVerify is `autofloss verify [flags] <address>…`: one JSON line per
// address; addresses come from stdin (one per line) when none are given or
// when "-" is given. The engine is configured from the config file's verify
// section (flags -dns-servers, -smtp-port, -mode, -no-smtp override).
func runVerify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return verifycli.Run(ctx, args, stdin, stdout, stderr)
}

// runListsUpdate is `autofloss lists update --kind <kind> --from <file|url> [--dir verify/data]`.
func runListsUpdate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return verifycli.RunLists(ctx, append([]string{"update"}, args...), stdin, stdout, stderr)
}

// runListsSizes is `autofloss lists sizes [--dir d]`.
func runListsSizes(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return verifycli.RunLists(ctx, append([]string{"sizes"}, args...), stdin, stdout, stderr)
}
