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
