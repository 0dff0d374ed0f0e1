package esp

import (
	"context"
	"fmt"
	"time"
)

// checked is what Registry.Open returns: the platform's adapter with every page it reads held to the Contact
// contract, whatever the platform (or a proxy in front of it) answered. A page with a contact that has no ID
// — which could be neither written back nor told apart from another such contact — is refused as a whole
// with a plain (non-retried, like a malformed body) error naming the platform and the position, never the
// contact. A Total below -1 (a platform's negative count, e.g. ActiveCampaign's meta.total "-3") is
// reported as unknown (-1). Both found by FuzzPageDecoders: most decoders took any element of the page array
// as a contact, id or not, and passed counts through unchecked.
type checked struct {
	Adapter
	slug string
}

func (c checked) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	p, err := c.Adapter.Contacts(ctx, cursor, since)
	if err != nil {
		return p, err
	}
	for i := range p.Contacts {
		if p.Contacts[i].ID == "" {
			return Page{}, fmt.Errorf("esp: %s: malformed page: contact %d of %d has no id", c.slug, i+1, len(p.Contacts))
		}
	}
	if p.Total < -1 {
		p.Total = -1
	}
	return p, nil
}
