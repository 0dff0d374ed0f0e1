package esp_test

import (
	"context"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
)

// TestMailchimpWritesDuringRead: the worker writes back (fields, unsubscribe, archive) between pages. Offset
// paging must not skip anyone because of those writes, in full and in incremental reads.
func TestMailchimpWritesDuringRead(t *testing.T) {
	for _, incremental := range []bool{false, true} {
		name := map[bool]string{false: "full", true: "incremental"}[incremental]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f, err := esptest.Start("mailchimp", esptest.Options{Seed: esptest.Seed{N: 400, Seed: 9, Lists: 2}, Limits: &esp.Limits{}})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			c := esp.NewClient(esp.ClientOptions{Limits: map[string]esp.Limits{"mailchimp": {}}})
			a, err := esp.Platforms().Open("mailchimp", f.Credentials(true), c, esp.Options{
				BaseURLs: map[string]string{"mailchimp": f.URL()}, PageSize: map[string]int{"mailchimp": 10}})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.EnsureFields(ctx); err != nil {
				t.Fatal(err)
			}
			var since time.Time
			if incremental {
				since = time.Now().Add(-2 * time.Second)
				f.Touch(400)
				time.Sleep(1100 * time.Millisecond) // writes land in a later second than the touch
			}
			want := f.Expected()
			seen := map[esptest.Key]bool{}
			var cur esp.Cursor
			for n := 0; ; n++ {
				p, err := a.Contacts(ctx, cur, since)
				if err != nil {
					t.Fatal(err)
				}
				for k, ct := range p.Contacts {
					seen[esptest.Key{ID: ct.ID, ListID: ct.ListID}] = true
					switch k % 4 {
					case 0:
						err = a.SetFields(ctx, ct, esp.Fields{esp.FieldReason: "typo"})
					case 1:
						err = a.Unsubscribe(ctx, ct)
					case 2:
						_, err = a.Delete(ctx, ct)
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if cur = p.Next; cur == "" {
					break
				}
				if n > 1000 {
					t.Fatal("no end")
				}
			}
			for k, r := range want {
				if !seen[k] {
					t.Errorf("contact %d in list %q skipped", r.Index, k.ListID)
				}
			}
		})
	}
}
