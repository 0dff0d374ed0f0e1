package esp_test

import (
	"context"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
)

// Drip and Gist page by page number, which shifts when people are deleted: the adapters' own deletes in the
// middle of a read must not make them skip anyone.
func TestDripDeleteDuringRead(t *testing.T) { deleteDuringRead(t, "drip") }

func deleteDuringRead(t *testing.T, slug string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := newHarness(t, slug, setup{seed: esptest.Seed{N: 95, Seed: 9, Lists: 2}, pageSize: 10})
	a := h.adapter(true)
	have := map[esptest.Key]*got{}
	deleted := map[esptest.Key]bool{}
	cur := ""
	pages := 0
	for {
		p, err := a.Contacts(ctx, esp.Cursor(cur), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Contacts {
			k := esptest.Key{ID: c.ID, ListID: c.ListID}
			if g := have[k]; g != nil {
				g.count++
			} else {
				have[k] = &got{c: c, count: 1}
			}
		}
		// Delete the first three contacts of every other page, as a delete-mode run would.
		if pages%2 == 0 {
			for _, c := range p.Contacts[:min(3, len(p.Contacts))] {
				if _, err := a.Delete(ctx, c); err != nil {
					t.Fatal(err)
				}
				deleted[esptest.Key{ID: c.ID, ListID: c.ListID}] = true
			}
		}
		pages++
		if cur = string(p.Next); cur == "" {
			break
		}
	}
	for k := range deleted {
		delete(have, k)
	}
	if len(deleted) == 0 {
		t.Fatal("nothing was deleted")
	}
	exactlyOnce(t, h.fake, h.fake.Expected(), have)
}
