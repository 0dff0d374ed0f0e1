package esp

import (
	"encoding/json"
	"fmt"
	"io"
)

// Streaming JSON helpers: adapters decode pages token by token so memory is one page (and one element at a
// time inside it), never a whole list.

// NewDecoder returns a json.Decoder over r that keeps numbers as json.Number.
func NewDecoder(r io.Reader) *json.Decoder {
	d := json.NewDecoder(r)
	d.UseNumber()
	return d
}

// DecodeObject walks one JSON object; for each key with a handler it calls the handler (which must consume
// exactly that key's value), every other value is skipped without being held. A JSON null counts as an
// empty object.
func DecodeObject(d *json.Decoder, fields map[string]func(*json.Decoder) error) error {
	t, err := d.Token()
	if err != nil {
		return eof(err)
	}
	if t == nil {
		return nil
	}
	if delim, ok := t.(json.Delim); !ok || delim != '{' {
		return fmt.Errorf("esp: expected a JSON object, got %T", t)
	}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return eof(err)
		}
		k, _ := t.(string)
		if h := fields[k]; h != nil {
			if err := h(d); err != nil {
				return err
			}
			continue
		}
		if err := SkipValue(d); err != nil {
			return err
		}
	}
	_, err = d.Token() // '}'
	return eof(err)
}

// DecodeArray calls each for every element of one JSON array (each must consume exactly one value). A JSON
// null counts as an empty array.
func DecodeArray(d *json.Decoder, each func(*json.Decoder) error) error {
	t, err := d.Token()
	if err != nil {
		return eof(err)
	}
	if t == nil {
		return nil
	}
	if delim, ok := t.(json.Delim); !ok || delim != '[' {
		return fmt.Errorf("esp: expected a JSON array, got %T", t)
	}
	for d.More() {
		if err := each(d); err != nil {
			return err
		}
	}
	_, err = d.Token() // ']'
	return eof(err)
}

// SkipValue consumes one JSON value of any size token by token.
func SkipValue(d *json.Decoder) error {
	depth := 0
	for {
		t, err := d.Token()
		if err != nil {
			return eof(err)
		}
		if delim, ok := t.(json.Delim); ok {
			switch delim {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// Into returns a handler that decodes the value into v.
func Into(v any) func(*json.Decoder) error {
	return func(d *json.Decoder) error { return eof(d.Decode(v)) }
}

// eof turns an io.EOF in the middle of a value into io.ErrUnexpectedEOF, so a cut-off body is retried.
func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
