// Command autofloss is the admin CLI: migrate, accounts, API keys, credits, secrets, and serve (api +
// worker + scheduler in one process). Every command takes -config (default $AUTOFLOSS_CONFIG, then
// ./config.yaml). Output meant for people goes to stdout; logs go to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one entry of the command table. name may be two words ("apikeys create").
type command struct {
	name  string
	usage string
	run   func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands is the command table; add a line here to add a command.
func commands() []command {
	return []command{
		{"migrate", "apply pending database migrations", runMigrate},
		{"accounts create", "--name NAME: create an account, print its id", runAccountsCreate},
		{"accounts list", "list accounts", runAccountsList},
		{"apikeys create", "--account ID: create an API key and print it (shown once)", runAPIKeysCreate},
		{"apikeys revoke", "--id KEY_ID: revoke an API key", runAPIKeysRevoke},
		{"apikeys list", "--account ID: list an account's keys (prefixes only)", runAPIKeysList},
		{"credits add", "--account ID --amount N [--ref REF]: add verification credits", runCreditsAdd},
		{"credits show", "--account ID: show the balance and recent ledger", runCreditsShow},
		{"secrets rotate", "re-seal every stored credential with the active key", runSecretsRotate},
		{"secrets generate", "print a new random base64 key for secrets.keys", runSecretsGenerate},
		{"sync", "[-no-progress] <connection_id>: run one floss now in the foreground (progress bar, then a summary)", runSync},
		{"serve", "[-local-redis] [-sandbox]: run the api, worker and scheduler in one process", runServe},
		{"demo", "serve with a local Redis and the sandbox (loopback fakes, mail world, demo API key): the quick start", runDemo},
		{"verify", "[-mode normal|aggressive] [-no-smtp] <address>… | -: verify addresses, one JSON line each", runVerify},
		{"lists update", "--kind KIND --from FILE|URL [--dir verify/data]: refresh a shipped list", runListsUpdate},
		{"lists sizes", "[--dir DIR]: entries per list", runListsSizes},
		{"bench", "[-only floss,rate,scheduler] [-sizes N,…] [-markdown]: end-to-end benchmarks (BENCHMARKS.md)", runBench},
	}
}

// errUsage makes main print the usage and exit 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args to a command and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var match *command
	var rest []string
	for i := range cmds {
		words := strings.Fields(cmds[i].name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == cmds[i].name {
			if match == nil || len(words) > len(strings.Fields(match.name)) {
				match, rest = &cmds[i], args[len(words):]
			}
		}
	}
	if match == nil {
		fmt.Fprintf(stderr, "autofloss: unknown command %q\n\n", strings.Join(args, " "))
		usage(stderr, cmds)
		return 2
	}
	err := match.run(ctx, rest, stdin, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "usage: autofloss %s %s\n", match.name, match.usage)
		return 2
	default:
		fmt.Fprintf(stderr, "autofloss %s: %v\n", match.name, err)
		return 1
	}
}

func usage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "usage: autofloss <command> [-config FILE] [flags]")
	fmt.Fprintln(w)
	sort.SliceStable(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-18s %s\n", c.name, c.usage)
	}
}
