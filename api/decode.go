package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// checkBody verifies a body is one JSON object: valid UTF-8, well-formed, nothing after it.
func checkBody(body []byte, required bool) (empty bool, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if required {
			return true, invalid("invalid_json", "", "a JSON object body is required")
		}
		return true, nil
	}
	if !utf8.Valid(body) {
		return false, invalid("invalid_json", "", "the request body is not valid UTF-8")
	}
	if trimmed[0] != '{' {
		return false, invalid("invalid_json", "", "the request body must be a JSON object")
	}
	if !json.Valid(trimmed) {
		return false, invalid("invalid_json", "", "the request body is not valid JSON (or has data after the object)")
	}
	return false, nil
}

// decodeStrict decodes one JSON object into dst, refusing unknown fields, wrong types and trailing data;
// errors are 400s naming the field (prefixed with prefix, e.g. "rules[3].").
func decodeStrict(body []byte, dst any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, prefix)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("invalid_json", "", "the request body has data after the JSON object")
	}
	return exactFields(body, dst, prefix)
}

// exactFields refuses a member that names a field of dst only case-insensitively ("Keyword" for
// "keyword"), which encoding/json would otherwise take for the field: field names are exact, as in the
// PATCH and connect bodies. Found by FuzzRuleBody.
func exactFields(body []byte, dst any, prefix string) error {
	t := reflect.TypeOf(dst)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	names := map[string]bool{}
	for i := 0; i < t.Elem().NumField(); i++ {
		f := t.Elem().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil // not an object: the decoder above has already said so
	}
	for _, k := range sortedKeys(members) {
		if !names[k] {
			return unknownField(prefix, k)
		}
	}
	return nil
}

func decodeError(err error, prefix string) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := prefix + te.Field
		if te.Field == "" {
			if prefix == "" {
				return invalid("invalid_json", "", "the request body must be a JSON object")
			}
			field = strings.TrimSuffix(prefix, ".")
		}
		return invalid("invalid_field", field, fmt.Sprintf("%s must be %s", field, jsonKind(te.Type.Kind().String())))
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return invalid("invalid_json", "", "the request body is not valid JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return unknownField(prefix, name)
	}
	return invalid("invalid_json", "", "the request body could not be decoded")
}

// unknownField is the 400 for a member that is not a field of the request (prefix "" or "rules[3].").
// A member with an empty name cannot be named: the field is then the enclosing element (none at the top
// level) and the message says what is wrong (found by FuzzRuleBody: `{"":1}` answered " is not a field").
func unknownField(prefix, name string) error {
	if name == "" {
		where := strings.TrimSuffix(prefix, ".")
		in := "the request body"
		if where != "" {
			in = where
		}
		return invalid("unknown_field", where, "a member with an empty name in "+in+" is not a field of this request")
	}
	return invalid("unknown_field", prefix+name, prefix+name+" is not a field of this request")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "float64":
		return "a number"
	case "slice":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "of another type"
}

// rawString reads an optional JSON string field kept as raw JSON (nil = absent).
func rawString(raw json.RawMessage, field string) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", invalid("invalid_field", field, field+" must be a string")
	}
	return s, nil
}

func rawBool(raw json.RawMessage, field string) (bool, error) {
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return false, invalid("invalid_field", field, field+" must be a boolean")
	}
	return b, nil
}

// rawObject reads a JSON object field into its members.
func rawObject(raw json.RawMessage, field string) (map[string]json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return nil, invalid("invalid_field", field, field+" must be an object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(t, &m); err != nil {
		return nil, invalid("invalid_field", field, field+" must be an object")
	}
	return m, nil
}
