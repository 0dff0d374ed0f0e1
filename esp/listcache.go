package esp

import (
	"context"
	"sync"
)

// listCache remembers an account's lists after a full read. Adapters that page list by list (the cursor
// holds the list's index and id) use it so that every page does not re-read the lists: embed a
// `lists listCache` field, end `Lists` with `return x.lists.remember(out), nil` and read them in
// `Contacts` with `x.lists.get(ctx, x.Lists)`. The zero value is ready; safe for concurrent use.
type listCache struct {
	mu    sync.Mutex
	lists []List
}

// remember stores the lists of a full read and returns them.
func (c *listCache) remember(lists []List) []List {
	c.mu.Lock()
	c.lists = lists
	c.mu.Unlock()
	return lists
}

// get returns the remembered lists, or reads them with load when there are none yet (load is expected
// to call remember).
func (c *listCache) get(ctx context.Context, load func(context.Context) ([]List, error)) ([]List, error) {
	c.mu.Lock()
	l := c.lists
	c.mu.Unlock()
	if l != nil {
		return l, nil
	}
	return load(ctx)
}

// relocateList finds a cursor's list again by id, lists having been added or removed since the cursor
// was written (at = the index it had then): its index now and true, or at and false when it is gone (the
// adapter then continues with the list now at that index, from its start).
func relocateList(lists []List, at int, id string) (int, bool) {
	for i, l := range lists {
		if l.ID == id {
			return i, true
		}
	}
	return at, false
}
