package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/autofloss/autofloss/internal/app"
	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/verify"
)

// runSync is `autofloss sync <connection_id>`: one floss run in the foreground with the worker's own code
// (no Redis needed), a progress bar on stderr, then a summary table by status and reason on stdout. It
// resumes the connection's unfinished run if it has one. SIGINT/SIGTERM commits the pages in hand (those already read) and stops;
// the same command resumes from there.
func runSync(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("sync", stderr)
	noBar := fs.Bool("no-progress", false, "no progress bar")
	// The connection id may come before or after the flags.
	var cnxID string
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		cnxID = fs.Arg(0)
		if err := parse(fs, fs.Args()[1:]); err != nil {
			return err
		}
	}
	if cnxID == "" {
		return errUsage
	}
	a, err := app.Start(ctx, app.Options{ConfigPath: *cfg, LogOutput: stderr, Component: "cli", NoRedis: true})
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.Store.ConnectionByID(ctx, cnxID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no connection %s", cnxID)
		}
		return err
	}
	p, err := a.NewPipeline(nil)
	if err != nil {
		return err
	}
	defer p.Close()
	bar := progressbar.NewOptions64(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("flossing "+cnxID),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("contacts"),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetVisibility(!*noBar),
		progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(true))
	var max int64 = -1
	progress := func(run store.Run) {
		if run.Total != nil && *run.Total != max && *run.Total > 0 {
			max = *run.Total
			bar.ChangeMax64(max)
		}
		_ = bar.Set64(run.Counts.Seen)
	}
	// The run itself is not cancelled by a signal: the signal asks it to stop after the pages in hand.
	run, outcome, err := p.Runner.Sync(context.WithoutCancel(ctx), jobs.SyncPayload{ConnectionID: cnxID},
		jobs.SyncOptions{TaskID: "cli", Progress: progress, Stop: ctx.Done()})
	_ = bar.Finish()
	fmt.Fprintln(stderr)
	printSummary(stdout, run, outcome)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jobs.ErrStopping):
		fmt.Fprintln(stdout, "stopped after a committed page; run the same command to resume")
		return nil
	}
	return err
}

// printSummary prints the run's counts and a table by status and reason.
func printSummary(w io.Writer, run store.Run, outcome jobs.Outcome) {
	if run.ID == "" {
		fmt.Fprintf(w, "no run: %s\n", outcome)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s (%s)\nstate\t%s\noutcome\t%s\n", run.ID, run.Kind, run.State, outcome)
	c := run.Counts
	fmt.Fprintf(tw, "seen\t%d\nskipped (unsubscribed)\t%d\nreused (re-verify window)\t%d\nverified\t%d\npassed\t%d\nfailed\t%d\nwritten back\t%d\ncredits used\t%d\n",
		c.Seen, c.Skipped, c.Reused, c.Verified, c.Passed, c.Failed, c.WrittenBack, run.CreditsUsed)
	if run.Error != nil {
		fmt.Fprintf(tw, "error\t%s: %s\n", run.Error.Code, run.Error.Message)
	}
	_ = tw.Flush()
	type row struct {
		status, reason string
		n              int64
	}
	var rows []row
	var total int64
	for r, n := range run.ByReason {
		rows = append(rows, row{string(verify.Reason(r).Status()), r, n})
		total += n
	}
	order := map[string]int{"passed": 0, "undeliverable": 1, "risky": 2, "unknown": 3}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].status != rows[j].status {
			return order[rows[i].status] < order[rows[j].status]
		}
		return rows[i].n > rows[j].n || (rows[i].n == rows[j].n && rows[i].reason < rows[j].reason)
	})
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tREASON\tCONTACTS\tSHARE\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f%%\t\n", r.status, r.reason, r.n, 100*float64(r.n)/float64(max64(total, 1)))
	}
	fmt.Fprintf(tw, "total\t\t%d\t\t\n", total)
	_ = tw.Flush()
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
