package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/store"
)

// TestOpenOrCreateRuns: the batch path opens one run per connection, finds the unfinished ones already
// there, leaves out connections that do not exist, and keeps one unfinished run per connection when
// several callers race (scheduler replicas), on both drivers.
func TestOpenOrCreateRuns(t *testing.T) {
	for name, url := range testenv.Databases(t) {
		t.Run(name, func(t *testing.T) {
			st := testenv.Store(t, url)
			a := newAccount(t, st, 0)
			var cs []store.Connection
			for range 7 {
				cs = append(cs, newConnection(t, st, a.ID, "brevo", `{}`))
			}
			existing, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: cs[0].ID, Kind: store.RunFull})
			if err != nil {
				t.Fatal(err)
			}
			since := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
			nrs := []store.NewRun{{ConnectionID: "cnx_missing", Kind: store.RunFull}}
			for i, c := range cs {
				nr := store.NewRun{ConnectionID: c.ID, Kind: store.RunFull, TaskID: "t"}
				if i%2 == 1 {
					nr.Kind, nr.Since = store.RunIncremental, &since
				}
				nrs = append(nrs, nr)
			}
			nrs = append(nrs, nrs[3]) // a duplicate in the batch
			got, err := st.OpenOrCreateRuns(ctx(), nrs)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(cs) {
				t.Fatalf("got %d runs, want %d", len(got), len(cs))
			}
			for i, c := range cs {
				o, ok := got[c.ID]
				switch {
				case !ok:
					t.Fatalf("connection %d: no run", i)
				case i == 0 && (o.Created || o.Run.ID != existing.ID):
					t.Fatalf("connection 0: %+v, want the existing run %s", o, existing.ID)
				case i > 0 && (!o.Created || o.Run.State != store.RunQueued || o.Run.ConnectionID != c.ID):
					t.Fatalf("connection %d: %+v", i, o)
				case i%2 == 1 && (o.Run.Kind != store.RunIncremental || o.Run.Since == nil || !o.Run.Since.Equal(since)):
					t.Fatalf("connection %d: kind %s since %v", i, o.Run.Kind, o.Run.Since)
				}
				open, err := st.OpenRun(ctx(), c.ID)
				if err != nil || open.ID != o.Run.ID {
					t.Fatalf("connection %d: open run %s (%v), batch said %s", i, open.ID, err, o.Run.ID)
				}
			}
			// Replicas racing on fresh connections: exactly one creator per connection, one run each.
			var fresh []store.NewRun
			for range 20 {
				fresh = append(fresh, store.NewRun{ConnectionID: newConnection(t, st, a.ID, "brevo", `{}`).ID, Kind: store.RunFull})
			}
			const replicas = 4
			res := make([]map[string]store.OpenedRun, replicas)
			errs := make([]error, replicas)
			var wg sync.WaitGroup
			for i := range replicas {
				wg.Go(func() { res[i], errs[i] = st.OpenOrCreateRuns(ctx(), fresh) })
			}
			wg.Wait()
			for _, nr := range fresh {
				created, id := 0, ""
				for i := range replicas {
					if errs[i] != nil {
						t.Fatal(errs[i])
					}
					o := res[i][nr.ConnectionID]
					if id != "" && o.Run.ID != id {
						t.Fatalf("two unfinished runs for one connection: %s %s", id, o.Run.ID)
					}
					id = o.Run.ID
					if o.Created {
						created++
					}
				}
				if created != 1 {
					t.Fatalf("%d replicas created the run, want 1", created)
				}
			}
			if got, err := st.OpenOrCreateRuns(ctx(), []store.NewRun{{ConnectionID: cs[1].ID, Kind: "bogus"}}); err == nil {
				t.Fatalf("bogus kind accepted: %v", got)
			}
		})
	}
}

// TestDueBatch: the scheduler's windowed walk (DueBatch) selects exactly what DueConnections selects, in
// the same order, for windows of every size — including windows with nothing due in them — on both
// drivers: never synced, synced long ago, verify_first polling, a stale run, a run paused for credits,
// and not due: synced recently, disconnected, no credits, a live run.
func TestDueBatch(t *testing.T) {
	for name, url := range testenv.Databases(t) {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: time.Now()}
			st := testenv.StoreWith(t, url, store.Options{Keys: testenv.KeyRing(t), Now: clock.Now})
			rich, poor := newAccount(t, st, 100), newAccount(t, st, 0)
			mine := map[string]bool{rich.ID: true, poor.ID: true}
			conn := func(acct, typ, settings string, auto bool) store.Connection {
				return must[store.Connection](t)(st.CreateConnection(ctx(), store.NewConnection{AccountID: acct, Type: typ, Name: typ,
					AutoFlossEnabled: auto, Settings: json.RawMessage(settings), Credentials: store.Credentials{"api_key": "pk_x"}}))
			}
			finish := func(c store.Connection) {
				r := must[store.Run](t)(func() (store.Run, error) {
					r, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull})
					return r, err
				}())
				must[store.Run](t)(st.StartRun(ctx(), r.ID))
				must[store.Run](t)(st.FinishRun(ctx(), r.ID))
			}
			open := func(c store.Connection) store.Run {
				return must[store.Run](t)(func() (store.Run, error) {
					r, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull})
					return r, err
				}())
			}
			for range 3 {
				conn(rich.ID, "klaviyo", `{}`, true) // never synced: due
			}
			old := conn(rich.ID, "klaviyo", `{}`, true)
			finish(old)
			for range 4 {
				conn(poor.ID, "brevo", `{}`, true) // no credits: a window with nothing due
			}
			vf := conn(rich.ID, "klaviyo", `{"verify_first":true}`, false)
			finish(vf)
			gone := conn(rich.ID, "brevo", `{}`, true)
			off := store.StatusDisconnected
			must[store.Connection](t)(st.UpdateConnection(ctx(), rich.ID, gone.ID, store.ConnectionUpdate{Status: &off}))
			stale := conn(rich.ID, "drip", `{}`, true)
			open(stale)
			clock.Add(2 * time.Hour)
			recent := conn(rich.ID, "klaviyo", `{}`, true)
			finish(recent)
			busy := conn(rich.ID, "drip", `{}`, true)
			open(busy)
			paused := conn(rich.ID, "keap", `{}`, false)
			if err := st.PauseRun(ctx(), open(paused).ID); err != nil {
				t.Fatal(err)
			}
			conn(rich.ID, "klaviyo", `{}`, true) // the last connection is due: the walk ends on a due one
			clock.Add(10 * time.Minute)

			walk := func(q store.DueQuery, due func(context.Context, store.DueQuery) ([]store.Connection, string, error)) []string {
				var out []string
				for pages := 0; ; pages++ {
					if pages > 100 {
						t.Fatal("the walk does not end")
					}
					cs, next, err := due(ctx(), q)
					if err != nil {
						t.Fatal(err)
					}
					for _, c := range cs {
						if mine[c.AccountID] {
							out = append(out, c.ID)
						}
					}
					if next == "" {
						return out
					}
					q.Page.Cursor = next
				}
			}
			for _, limit := range []int{1, 2, 3, 7, 100} {
				q := store.DueQuery{FlossInterval: time.Hour, VerifyFirstInterval: 5 * time.Minute, StaleAfter: time.Hour, Page: store.Page{Limit: limit}}
				want := walk(q, st.DueConnections)
				got := walk(q, st.DueBatch)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("limit %d: DueBatch %v, DueConnections %v", limit, got, want)
				}
				// never synced x3, old, vf, stale, paused, the last one.
				if len(got) != 8 || slices.Contains(got, recent.ID) || slices.Contains(got, busy.ID) || slices.Contains(got, gone.ID) ||
					!slices.Contains(got, stale.ID) || !slices.Contains(got, paused.ID) || !slices.Contains(got, vf.ID) || !slices.Contains(got, old.ID) {
					t.Fatalf("limit %d: due %v", limit, got)
				}
			}
			if _, _, err := st.DueBatch(ctx(), store.DueQuery{Page: store.Page{Cursor: "not a cursor"}}); !errors.Is(err, store.ErrInvalidCursor) {
				t.Fatalf("bad cursor: %v", err)
			}
		})
	}
}
