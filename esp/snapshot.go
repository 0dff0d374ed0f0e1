package esp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// snapshotDelete is the usual Delete: GET getURL as the snapshot (the raw JSON body), then DELETE delURL,
// both with h. A contact already gone fails the GET with the ErrNotFound error and no snapshot. With
// goneIsDone a 404 on the DELETE counts as done: the contact went between the two calls (e.g. a retried
// DELETE whose first answer was lost).
func (a *Account) snapshotDelete(ctx context.Context, getURL, delURL string, h http.Header, goneIsDone bool) (json.RawMessage, error) {
	var snap json.RawMessage
	if err := a.DoJSON(ctx, http.MethodGet, getURL, h, nil, ReadRaw(&snap)); err != nil {
		return nil, err
	}
	if err := a.DoJSON(ctx, http.MethodDelete, delURL, h, nil, nil); err != nil && !(goneIsDone && errors.Is(err, ErrNotFound)) {
		return nil, err
	}
	return snap, nil
}
