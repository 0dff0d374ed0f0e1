package esp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// cursorCodec writes and reads the cursors most adapters use: a version prefix followed by
// colon-separated fields, e.g. "m1:<list index>:<list id>:<offset>:<since>". Declare one per adapter
// (`var xCursors = cursorCodec{platform: "x", prefix: "x1:"}`), build `Page.Next` with encode and read a
// cursor back with decode; range checks stay in the adapter (return codec.malformed()).
type cursorCodec struct {
	platform string // the slug, for errors
	prefix   string // the version prefix, e.g. "m1:"
}

// encode formats the fields (ints, int64s, strings) after the prefix, separated by colons.
func (c cursorCodec) encode(fields ...any) string {
	var b strings.Builder
	b.WriteString(c.prefix)
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprint(&b, f)
	}
	return b.String()
}

// decode reads s into dst, one *int, *int64 or *string per field: a cursor without the prefix or with
// another number of fields is foreign, one whose number field does not parse is malformed. String fields
// therefore cannot hold a colon (ids never do).
func (c cursorCodec) decode(s string, dst ...any) error {
	rest, ok := strings.CutPrefix(s, c.prefix)
	parts := strings.Split(rest, ":")
	if !ok || len(parts) != len(dst) {
		return c.foreign()
	}
	for i, d := range dst {
		var err error
		switch d := d.(type) {
		case *int:
			*d, err = strconv.Atoi(parts[i])
		case *int64:
			*d, err = strconv.ParseInt(parts[i], 10, 64)
		case *string:
			*d = parts[i]
		default:
			panic(fmt.Sprintf("esp: cursorCodec.decode: unsupported field type %T", d))
		}
		if err != nil {
			return c.malformed()
		}
	}
	return nil
}

// foreign is the error for a cursor this adapter did not write.
func (c cursorCodec) foreign() error { return errors.New("esp: " + c.platform + ": foreign cursor") }

// malformed is the error for a cursor with this adapter's prefix whose fields make no sense.
func (c cursorCodec) malformed() error {
	return errors.New("esp: " + c.platform + ": malformed cursor")
}
