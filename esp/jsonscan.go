package esp

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a small streaming JSON reader for the hottest page decoders (Mailchimp's 1,000-member pages):
// it walks objects and arrays by hand, hands string values over without reflection and skips every other
// value (checking its syntax) without holding it. encoding/json's Decoder scans each value twice (once to
// find its end, once to decode it) and reflects on every field; this reads each byte once.
//
// Its decisions match encoding/json's for what the adapters keep: strings are unquoted the same way
// (escapes, surrogate pairs, invalid UTF-8 and lone surrogates become U+FFFD), null is accepted where a
// string or a number is expected and leaves it unset, a value of another type is an error. Errors: a body
// cut off mid-value is io.ErrUnexpectedEOF (so the client retries it), a read error is returned as is, a
// syntax error is an error naming the byte offset.
type scanner struct {
	r    io.Reader
	buf  []byte // buf[pos:end] is read but not consumed
	pos  int
	end  int
	off  int64 // stream offset of buf[0]
	err  error // sticky read error (io.EOF at the end)
	tmp  []byte
	keyb []byte
}

// scanMaxToken bounds one string held whole (keys and kept values; skipped values are never held).
const scanMaxToken = 1 << 20

var scanBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func newScanner(r io.Reader) *scanner {
	return &scanner{r: r, buf: *scanBufs.Get().(*[]byte)}
}

// release returns the scanner's buffer to the pool; the scanner must not be used afterwards.
func (s *scanner) release() {
	if cap(s.buf) == 32<<10 {
		b := s.buf[:cap(s.buf)]
		scanBufs.Put(&b)
	}
	s.buf = nil
}

// fill reads more input, keeping buf[pos:end] (moved to the front, or into a larger buffer when the
// whole buffer is one unfinished token). It reports false at the end of input or on a read error.
func (s *scanner) fill() bool {
	if s.err != nil {
		return false
	}
	if s.pos > 0 {
		n := copy(s.buf, s.buf[s.pos:s.end])
		s.off += int64(s.pos)
		s.pos, s.end = 0, n
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= scanMaxToken {
			s.err = errors.New("esp: JSON token over 1 MiB")
			return false
		}
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	for range 100 {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err != nil {
			s.err = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	s.err = io.ErrNoProgress
	return false
}

// short is the error when input ran out mid-value: the read error, io.ErrUnexpectedEOF for a clean end.
func (s *scanner) short() error {
	if s.err == nil || s.err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return s.err
}

// fail is a syntax error at the current position.
func (s *scanner) fail(what string) error {
	return fmt.Errorf("esp: invalid JSON at offset %d: %s", s.off+int64(s.pos), what)
}

// next skips whitespace and returns the next byte without consuming it (false: input ended).
func (s *scanner) next() (byte, bool) {
	for {
		for s.pos < s.end {
			switch c := s.buf[s.pos]; c {
			case ' ', '\t', '\n', '\r':
				s.pos++
			default:
				return c, true
			}
		}
		if !s.fill() {
			return 0, false
		}
	}
}

// consume skips whitespace and consumes c.
func (s *scanner) consume(c byte) error {
	b, ok := s.next()
	if !ok {
		return s.short()
	}
	if b != c {
		return s.fail(fmt.Sprintf("expected %q", c))
	}
	s.pos++
	return nil
}

// literal consumes the literal lit (null, true, false) whose first byte is next.
func (s *scanner) literal(lit string) error {
	for s.end-s.pos < len(lit) {
		if !s.fill() {
			return s.short()
		}
	}
	if string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return s.fail("invalid literal")
	}
	s.pos += len(lit)
	return nil
}

// null consumes a null when one is next.
func (s *scanner) null() (bool, error) {
	if c, ok := s.next(); ok && c == 'n' {
		return true, s.literal("null")
	}
	return false, nil
}

// object walks one object, calling each with every key (valid until each returns); each must consume the
// key's value. A null counts as an empty object; another non-object value is an error.
func (s *scanner) object(each func(key []byte) error) error {
	return s.container('{', '}', func() error {
		k, err := s.key()
		if err != nil {
			return err
		}
		if err := s.consume(':'); err != nil {
			return err
		}
		return each(k)
	})
}

// array walks one array, calling each per element (each must consume it). A null counts as an empty
// array; another non-array value is an error.
func (s *scanner) array(each func() error) error { return s.container('[', ']', each) }

// container walks the members of an object or the elements of an array (open and close are its
// brackets), calling member for each; a null counts as an empty one.
func (s *scanner) container(open, close byte, member func() error) error {
	if n, err := s.null(); n || err != nil {
		return err
	}
	if err := s.consume(open); err != nil {
		return err
	}
	if c, ok := s.next(); ok && c == close {
		s.pos++
		return nil
	}
	for {
		if err := member(); err != nil {
			return err
		}
		c, ok := s.next()
		if !ok {
			return s.short()
		}
		s.pos++
		switch c {
		case ',':
		case close:
			return nil
		default:
			s.pos--
			return s.fail("expected ',' or '" + string(close) + "'")
		}
	}
}

// key reads an object key, unquoted, into a buffer reused by the next key.
func (s *scanner) key() ([]byte, error) {
	b, err := s.stringBytes(s.keyb[:0])
	s.keyb = b[:0]
	return b, err
}

// strInto reads a string value into *dst (null leaves *dst as it is; another type is an error).
func (s *scanner) strInto(dst *string) error {
	b, null, err := s.strBytes()
	if err == nil && !null {
		*dst = string(b)
	}
	return err
}

// strBytes reads a string value into a buffer reused by the next call (null: true, no bytes).
func (s *scanner) strBytes() (b []byte, null bool, err error) {
	if n, err := s.null(); n || err != nil {
		return nil, n, err
	}
	b, err = s.stringBytes(s.tmp[:0])
	s.tmp = b[:0]
	return b, false, err
}

// intInto reads an integer value into *dst as encoding/json decodes a JSON number into an int (no
// fraction or exponent, in range); null leaves *dst as it is.
func (s *scanner) intInto(dst *int) error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	c, ok := s.next()
	if !ok {
		return s.short()
	}
	if c != '-' && (c < '0' || c > '9') {
		return s.fail("expected a number")
	}
	l, err := s.number()
	if err != nil {
		return err
	}
	tok := s.buf[s.pos-l : s.pos]
	n, err := strconv.Atoi(string(tok))
	if err != nil {
		return fmt.Errorf("esp: JSON number %.40s is not an int", tok)
	}
	*dst = n
	return nil
}

// number consumes one number (which starts at pos) checking its grammar and returns its length: it is
// buf[pos-length:pos] afterwards.
func (s *scanner) number() (int, error) {
	rel := 0 // offset from pos (fill moves buf, never pos's token)
	get := func() (byte, bool) {
		for s.pos+rel >= s.end {
			if !s.fill() {
				return 0, false
			}
		}
		return s.buf[s.pos+rel], true
	}
	digits := func() int {
		n := 0
		for {
			c, ok := get()
			if !ok || c < '0' || c > '9' {
				return n
			}
			rel++
			n++
		}
	}
	if c, _ := get(); c == '-' {
		rel++
	}
	c, ok := get()
	switch {
	case !ok:
		return 0, s.short()
	case c == '0':
		rel++
	case c >= '1' && c <= '9':
		digits()
	default:
		return 0, s.fail("invalid number")
	}
	if c, ok := get(); ok && c == '.' {
		rel++
		if digits() == 0 {
			return 0, s.numberEnd(rel)
		}
	}
	if c, ok := get(); ok && (c == 'e' || c == 'E') {
		rel++
		if c, ok := get(); ok && (c == '+' || c == '-') {
			rel++
		}
		if digits() == 0 {
			return 0, s.numberEnd(rel)
		}
	}
	// Input ending right after the number is reported by whatever reads next.
	s.pos += rel
	return rel, nil
}

// numberEnd is the error of a number missing its digits after '.', 'e' or a sign.
func (s *scanner) numberEnd(rel int) error {
	if s.pos+rel >= s.end {
		return s.short()
	}
	return s.fail("invalid number")
}

// stringBytes reads one string token (the next value must be a string), unquoted, appended to dst.
func (s *scanner) stringBytes(dst []byte) ([]byte, error) {
	c, ok := s.next()
	if !ok {
		return dst, s.short()
	}
	if c != '"' {
		return dst, s.fail("expected a string")
	}
	s.pos++
	for {
		// Fast run: plain ASCII up to the closing quote.
		i := s.pos
		for i < s.end {
			c := s.buf[i]
			if c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				break
			}
			i++
		}
		dst = append(dst, s.buf[s.pos:i]...)
		s.pos = i
		if i == s.end {
			if len(dst) > scanMaxToken {
				return dst, errors.New("esp: JSON string over 1 MiB")
			}
			if !s.fill() {
				return dst, s.short()
			}
			continue
		}
		switch c := s.buf[i]; {
		case c == '"':
			s.pos++
			return dst, nil
		case c < 0x20:
			return dst, s.fail("control character in string")
		case c == '\\':
			var err error
			if dst, err = s.escape(dst); err != nil {
				return dst, err
			}
		default: // a multi-byte sequence: whole, or invalid (U+FFFD) once at least 4 bytes or the end are here
			for s.end-s.pos < utf8.UTFMax && !utf8.FullRune(s.buf[s.pos:s.end]) {
				if !s.fill() {
					break
				}
			}
			r, size := utf8.DecodeRune(s.buf[s.pos:s.end])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s.buf[s.pos:s.pos+size]...)
			}
			s.pos += size
		}
	}
}

// escape decodes one backslash escape at pos.
func (s *scanner) escape(dst []byte) ([]byte, error) {
	for s.end-s.pos < 2 {
		if !s.fill() {
			return dst, s.short()
		}
	}
	e := s.buf[s.pos+1]
	switch e {
	case '"', '\\', '/':
		s.pos += 2
		return append(dst, e), nil
	case 'b':
		s.pos += 2
		return append(dst, '\b'), nil
	case 'f':
		s.pos += 2
		return append(dst, '\f'), nil
	case 'n':
		s.pos += 2
		return append(dst, '\n'), nil
	case 'r':
		s.pos += 2
		return append(dst, '\r'), nil
	case 't':
		s.pos += 2
		return append(dst, '\t'), nil
	case 'u':
		r, err := s.hex4()
		if err != nil {
			return dst, err
		}
		if utf16.IsSurrogate(r) {
			// A pair when a \uXXXX low surrogate follows; otherwise U+FFFD and the next escape stands alone.
			for s.end-s.pos < 6 {
				if !s.fill() {
					break
				}
			}
			if s.end-s.pos >= 6 && s.buf[s.pos] == '\\' && s.buf[s.pos+1] == 'u' {
				save := s.pos
				r2, err := s.hex4()
				if err != nil {
					return dst, err
				}
				if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
					return utf8.AppendRune(dst, p), nil
				}
				s.pos = save
			}
			r = utf8.RuneError
		}
		return utf8.AppendRune(dst, r), nil
	}
	return dst, s.fail("invalid escape")
}

// hex4 consumes \uXXXX at pos.
func (s *scanner) hex4() (rune, error) {
	for s.end-s.pos < 6 {
		if !s.fill() {
			return 0, s.short()
		}
	}
	var r rune
	for _, c := range s.buf[s.pos+2 : s.pos+6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, s.fail("invalid \\u escape")
		}
		r = r<<4 | rune(c)
	}
	s.pos += 6
	return r, nil
}

// skip consumes one value of any type and size, checking its syntax, holding none of it (strings are
// read in buffer-sized runs; depth is bounded as encoding/json bounds it).
func (s *scanner) skip() error { return s.skipDepth(0) }

func (s *scanner) skipDepth(depth int) error {
	if depth > 10000 {
		return errors.New("esp: JSON nested too deeply")
	}
	c, ok := s.next()
	if !ok {
		return s.short()
	}
	switch {
	case c == '{':
		return s.object(func([]byte) error { return s.skipDepth(depth + 1) })
	case c == '[':
		return s.array(func() error { return s.skipDepth(depth + 1) })
	case c == '"':
		return s.skipString()
	case c == 'n':
		return s.literal("null")
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == '-' || c >= '0' && c <= '9':
		_, err := s.number()
		return err
	}
	return s.fail("invalid value")
}

// skipString consumes a string without keeping it (escapes and control characters still checked).
func (s *scanner) skipString() error {
	s.pos++ // '"'
	for {
		for s.pos < s.end {
			c := s.buf[s.pos]
			switch {
			case c == '"':
				s.pos++
				return nil
			case c == '\\':
				if _, err := s.escape(s.tmp[:0]); err != nil {
					return err
				}
				continue
			case c < 0x20:
				return s.fail("control character in string")
			}
			s.pos++
		}
		if !s.fill() {
			return s.short()
		}
	}
}
