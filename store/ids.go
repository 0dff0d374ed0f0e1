package store

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
)

// ID prefixes.
const (
	PrefixAccount    = "acc_"
	PrefixAPIKey     = "key_"
	PrefixConnection = "cnx_"
	PrefixRule       = "kwr_"
	PrefixRun        = "run_"
	PrefixSnapshot   = "snp_"
)

// NewID returns prefix + 24 random lowercase hex characters (96 bits).
func NewID(prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("store: crypto/rand failed: %v", err)) // the OS RNG failing is unrecoverable
	}
	return prefix + hex.EncodeToString(b[:])
}

// Page asks for one page of a list: Cursor is the opaque next_cursor of the previous page ("" = first
// page); Limit is clamped to 1..100 (0 = 25).
type Page struct {
	Cursor string
	Limit  int
}

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return 25
	case p.Limit > 100:
		return 100
	}
	return p.Limit
}

// after decodes the cursor into the seq to continue from (0 = start).
func (p Page) after() (int64, error) {
	if p.Cursor == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
	if err != nil {
		return 0, ErrInvalidCursor
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n <= 0 {
		return 0, ErrInvalidCursor
	}
	return n, nil
}

func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
}
