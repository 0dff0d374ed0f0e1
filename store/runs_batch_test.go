package store_test

import (
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
