package esp_test

import (
	"context"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
)

// Users tied on one profileUpdatedAt second span several pages; the worker writes back (and deletes) the
// users of each page before asking for the next. Written users move behind the others in the export, so
// the adapter must skip fewer of the tied second next time: nobody may be lost (re-reading is allowed).
func TestIterableTiesWithWriteBacks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delete bool
	}{{"fields", false}, {"delete", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := esptest.Start("iterable", esptest.Options{Seed: esptest.Seed{N: 200, Seed: 9, Lists: 2}, Limits: &esp.Limits{}})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			touched := f.Touch(45) // 45 users share the current second
			c := esp.NewClient(esp.ClientOptions{Limits: map[string]esp.Limits{"iterable": {}}})
			a, err := esp.Platforms().Open("iterable", f.Credentials(true), c, esp.Options{
				BaseURLs: map[string]string{"iterable": f.URL()}, PageSize: map[string]int{"iterable": 10}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			seen := map[string]int{}
			var cur esp.Cursor
			for pages := 0; ; pages++ {
				if pages > 50 {
					t.Fatal("the read does not end")
				}
				p, err := a.Contacts(ctx, cur, time.Now().Add(-2*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				for _, ct := range p.Contacts {
					seen[ct.Email]++
					if seen[ct.Email] > 1 {
						continue
					}
					if tc.delete {
						if _, err := a.Delete(ctx, ct); err != nil {
							t.Fatal(err)
						}
					} else if err := a.SetFields(ctx, ct, esp.Fields{esp.FieldReason: "typo"}); err != nil {
						t.Fatal(err)
					}
				}
				if cur = p.Next; cur == "" {
					break
				}
			}
			for _, i := range touched {
				if seen[f.Seeded(i).Email] == 0 {
					t.Errorf("tied user %d was never read", i)
				}
			}
			if len(seen) != len(touched) {
				t.Errorf("read %d distinct users, want %d", len(seen), len(touched))
			}
		})
	}
}
