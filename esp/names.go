package esp

import "sync"

// idsByName remembers platform ids by name (tags, groups, custom fields) for adapters that must find a
// named object, or create it, before they can write with it: declare a `tags idsByName` field and call
// `x.tags.resolve(name, find, create)`. The zero value is ready; safe for concurrent use.
type idsByName struct {
	mu  sync.Mutex
	ids map[string]string
}

// resolve returns name's id: the remembered one, else the one find returns, else (find returned "") the
// one create returns. find and create report a platform error or an unusable answer as an error; a
// create that meets "exists already" (another writer got there first) should look again itself. A
// non-empty id is remembered; errors are not.
func (n *idsByName) resolve(name string, find, create func() (string, error)) (string, error) {
	n.mu.Lock()
	id := n.ids[name]
	n.mu.Unlock()
	if id != "" {
		return id, nil
	}
	id, err := find()
	if err != nil {
		return "", err
	}
	if id == "" {
		if id, err = create(); err != nil {
			return "", err
		}
	}
	if id != "" {
		n.mu.Lock()
		if n.ids == nil {
			n.ids = map[string]string{}
		}
		n.ids[name] = id
		n.mu.Unlock()
	}
	return id, nil
}
