package esp

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// mcPageRef decodes a Mailchimp member page as the adapter did with encoding/json before the scanner:
// the reference scanMCPage must agree with.
func mcPageRef(body string) ([]Contact, int, error) {
	type member struct {
		ID          string `json:"id"`
		Email       string `json:"email_address"`
		Status      string `json:"status"`
		LastChanged string `json:"last_changed"`
	}
	var out []Contact
	var total int
	err := DecodeObject(NewDecoder(strings.NewReader(body)), map[string]func(*json.Decoder) error{
		"members": func(d *json.Decoder) error {
			return DecodeArray(d, func(d *json.Decoder) error {
				var mm member
				if err := d.Decode(&mm); err != nil {
					return eof(err)
				}
				ct := Contact{ID: mm.ID, Email: mm.Email, Status: mcStatus(mm.Status)}
				if t, err := time.Parse(time.RFC3339, mm.LastChanged); err == nil {
					ct.UpdatedAt = t
				}
				out = append(out, ct)
				return nil
			})
		},
		"total_items": Into(&total),
	})
	return out, total, err
}

// scanMCPage is the page decode of mailchimp.Contacts over r.
func scanMCPage(r io.Reader) ([]Contact, int, error) {
	s := newScanner(r)
	defer s.release()
	var out []Contact
	var total int
	err := s.object(func(k []byte) error {
		switch {
		case string(k) == "members": // page keys match exactly (DecodeObject did)
			return s.array(func() error {
				ct, err := scanMCMember(s)
				if err == nil {
					out = append(out, ct)
				}
				return err
			})
		case string(k) == "total_items":
			return s.intInto(&total)
		}
		return s.skip()
	})
	return out, total, err
}

var mcPageCases = []string{
	`{"list_id":"a1","members":[{"id":"abc","email_address":"x@y.z","unique_email_id":"abc","email_type":"html","status":"cleaned","timestamp_signup":"2024-01-01T00:00:00+00:00","last_changed":"2024-01-02T03:04:05+00:00","list_id":"a1"}],"total_items":1}`,
	`{"members":[],"total_items":0}`,
	`null`,
	`{"members":null,"total_items":null}`,
	`{"members":[null,{"id":null,"status":null}],"total_items":7}`,
	` { "members" : [ { "id" : "a\"b\\c\/d\u00e9\ud83d\ude00\ud800x\udc00" , "status" : "unsubscribed" , "merge_fields" : {"A":[1,2.5e3,-0.1,true,false,null,{"x":{}}]}, "tags":[] } ] , "total_items" : 3 , "_links" : [ ] } `,
	`{"members":[{"ID":"upper","Email_Address":"e@x","STATUS":"archived","Last_Changed":"bad"}]}`,
	`{"members":[{"id":"x","id":"y","last_changed":"2024-01-02T03:04:05Z","last_changed":null}]}`,
	"{\"members\":[{\"id\":\"bad \xff utf8 \xc3\",\"email_address\":\"\xe2\x80\"}]}",
	`{"members":[{"id":5}]}`,
	`{"members":[{"id":"a"}],"total_items":1.5}`,
	`{"members":[{"id":"a"}],"total_items":"3"}`,
	`{"members":[{"id":"a"}],"total_items":99999999999999999999999}`,
	`{"members":[{"id":"a"]}`,
	`{"members":[{"id":"a"}`,
	`{"members":[{"id":"a`,
	`{"members":[{"id":"a\u12`,
	`{"members":[{"id":"a","x":01}]}`,
	`{"members":[{"id":"a","x":1.}]}`,
	`{"members":[{"id":"a","x":-}]}`,
	`{"members":[{"id":"a","x":tru}]}`,
	`{"members":[{"id":"a","x":"\q"}]}`,
	"{\"members\":[{\"id\":\"a\nb\"}]}",
	`[1,2]`,
	`{"members":{}}`,
	`{"members":["x"]}`,
	``,
	`{"members":[{"id":"a"}],"total_items":3} trailing`,
}

func TestScanMCPageMatchesEncodingJSON(t *testing.T) {
	for _, body := range mcPageCases {
		want, wantTotal, wantErr := mcPageRef(body)
		for _, r := range []io.Reader{strings.NewReader(body), iotest.OneByteReader(strings.NewReader(body))} {
			got, gotTotal, gotErr := scanMCPage(r)
			if (gotErr == nil) != (wantErr == nil) {
				t.Errorf("%q: error %v, encoding/json %v", body, gotErr, wantErr)
				continue
			}
			if errors.Is(wantErr, io.ErrUnexpectedEOF) != errors.Is(gotErr, io.ErrUnexpectedEOF) {
				t.Errorf("%q: error %v, encoding/json %v (cut-off bodies must stay retryable)", body, gotErr, wantErr)
			}
			if wantErr == nil && (!reflect.DeepEqual(got, want) || gotTotal != wantTotal) {
				t.Errorf("%q:\n got %+v %d\nwant %+v %d", body, got, gotTotal, want, wantTotal)
			}
		}
	}
}

// TestScannerLongValues: strings and skipped values longer than the buffer, and a read error mid-body.
func TestScannerLongValues(t *testing.T) {
	long := strings.Repeat("é\\u00e9x", 30000)
	body := `{"members":[{"id":"` + long + `","merge_fields":{"BIG":"` + long + `","ARR":[` + strings.Repeat(`"`+long[:100]+`",`, 2000) + `1]}}],"total_items":1}`
	want, _, err := mcPageRef(body)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := scanMCPage(strings.NewReader(body))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("long values: err %v, equal %v", err, reflect.DeepEqual(got, want))
	}
	boom := errors.New("connection reset by peer")
	_, _, err = scanMCPage(io.MultiReader(strings.NewReader(body[:len(body)/2]), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Fatalf("read error: got %v", err)
	}
}

func FuzzScanMCPage(f *testing.F) {
	for _, c := range mcPageCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, body string) {
		want, wantTotal, wantErr := mcPageRef(body)
		got, gotTotal, gotErr := scanMCPage(strings.NewReader(body))
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v, encoding/json %v", body, gotErr, wantErr)
		}
		if wantErr == nil && (!reflect.DeepEqual(got, want) || gotTotal != wantTotal) {
			t.Fatalf("%q:\n got %+v %d\nwant %+v %d", body, got, gotTotal, want, wantTotal)
		}
	})
}
