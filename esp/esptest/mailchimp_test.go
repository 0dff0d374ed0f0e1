package esptest

import (
	"encoding/json"
	"testing"
	"time"
)

// mcMemberRef is the Mailchimp member as the fake first wrote it, with encoding/json: the reference
// mcAppendMember must match byte for byte.
type mcMemberRef struct {
	ID          string            `json:"id"`
	Email       string            `json:"email_address"`
	UniqueID    string            `json:"unique_email_id"`
	EmailType   string            `json:"email_type"`
	Status      string            `json:"status"`
	MergeFields map[string]string `json:"merge_fields,omitempty"`
	Tags        []map[string]any  `json:"tags"`
	Signup      string            `json:"timestamp_signup"`
	LastChanged string            `json:"last_changed"`
	ListID      string            `json:"list_id"`
	Links       []any             `json:"_links,omitempty"`
}

func mcMemberRefOf(f *Fake, rec Record, l int, links bool) mcMemberRef {
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05+00:00") }
	m := mcMemberRef{
		ID: rec.ID, Email: rec.Email, UniqueID: rec.ID[:10], EmailType: "html", Status: mcStatusName(rec.Status),
		MergeFields: map[string]string{"FNAME": "", "LNAME": ""}, Tags: []map[string]any{},
		Signup: ts(rec.Created), LastChanged: ts(rec.Updated), ListID: f.ListID(l),
	}
	for k, v := range rec.Fields {
		m.MergeFields[k] = v
	}
	for n, t := range rec.Tags {
		m.Tags = append(m.Tags, map[string]any{"id": n + 1, "name": t})
	}
	if links {
		m.Links = []any{map[string]string{"rel": "self", "href": f.URL() + "/3.0/lists/" + f.ListID(l) + "/members/" + rec.ID, "method": "GET"}}
	}
	return m
}

func TestMailchimpMemberEncoding(t *testing.T) {
	f, err := Start("mailchimp", Options{Seed: Seed{N: 50, Seed: 3, Lists: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.SetFields(3, []string{"MF_REASON", "MF_SUGGEST"}, []string{"role <&> \"x\"", "a@b.c"})
	f.AddTag(3, "mf_failed - disposable")
	f.AddTag(3, "VIP\u2028")
	f.Unsubscribe(4)
	for i := range 10 {
		rec := f.Record(i)
		for _, links := range []bool{false, true} {
			mask := uint16(mcfAll)
			if !links {
				mask &^= mcfLinks
			}
			want, _ := json.Marshal(mcMemberRefOf(f, rec, rec.Lists[0], links))
			if got := mcAppendMember(nil, f, rec, rec.Lists[0], mask); string(got) != string(want) {
				t.Errorf("member %d (links %v):\n got %s\nwant %s", i, links, got, want)
			}
		}
	}
	// exclude_fields as the adapter sends it: only the member fields it reads are left.
	mask := mcExclude("members._links,members.merge_fields,members.tags,members.stats,members.location,_links", "members.")
	got := mcAppendMember(nil, f, f.Record(3), 0, mask)
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	for _, k := range []string{"merge_fields", "tags", "_links"} {
		if _, ok := m[k]; ok {
			t.Errorf("excluded %s present: %s", k, got)
		}
	}
	for _, k := range []string{"id", "email_address", "status", "last_changed", "timestamp_signup", "list_id"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s missing: %s", k, got)
		}
	}
	for _, tm := range []time.Time{time.Date(2024, 1, 2, 3, 4, 5, 999, time.UTC), time.Date(1, 12, 31, 23, 59, 59, 0, time.FixedZone("x", 3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC), {}} {
		if got, want := string(mcAppendTime(nil, tm)), tm.UTC().Format("2006-01-02T15:04:05+00:00"); got != want {
			t.Errorf("mcAppendTime(%v) = %s, want %s", tm, got, want)
		}
	}
	if got := mcExclude("id, members.id ,members.status", "members."); got != mcfAll&^(mcfID|mcfStatus) {
		t.Errorf("mcExclude: %b", got)
	}
}

var mcFieldBodies = []string{
	`{"merge_fields":{"MF_PASSED":"false","MF_REASON":"disposable"}}`,
	` { "merge_fields" : { } } `,
	`{"merge_fields":{"A":"1","A":"2"}}`,
	`{"merge_fields":{"A":"\u00e9"}}`,
	`{"merge_fields":{"A":"é"}}`,
	`{"merge_fields":{"A":1}}`,
	`{"merge_fields":null}`,
	`{"status":"unsubscribed"}`,
	`{"Merge_Fields":{"A":"1"}}`,
	`{"merge_fields":{"A":"1"},"status":"unsubscribed"}`,
	`{"merge_fields":{"A":"1"}} x`,
	`{"merge_fields":{"A":"1",}}`,
	`{"merge_fields":{"A":"1"}`,
	"{\"merge_fields\":{\"A\":\"a\tb\"}}",
	``,
}

// TestMailchimpFastFields: the write-back fast path reads exactly what encoding/json reads, or stands aside.
func TestMailchimpFastFields(t *testing.T) {
	for _, b := range mcFieldBodies {
		checkMCFastFields(t, b)
	}
	if _, _, ok := mcFastFields([]byte(mcFieldBodies[0])); !ok {
		t.Error("the adapter's body does not take the fast path")
	}
}

func FuzzMailchimpFastFields(f *testing.F) {
	for _, b := range mcFieldBodies {
		f.Add(b)
	}
	f.Fuzz(checkMCFastFields)
}

func checkMCFastFields(t *testing.T, b string) {
	names, values, ok := mcFastFields([]byte(b))
	if !ok {
		return
	}
	var body struct {
		Status      string            `json:"status"`
		MergeFields map[string]string `json:"merge_fields"`
	}
	if err := json.Unmarshal([]byte(b), &body); err != nil {
		t.Fatalf("%q: fast path accepted what encoding/json refuses: %v", b, err)
	}
	got := map[string]string{}
	for k, n := range names {
		got[n] = values[k]
	}
	if body.Status != "" || len(got) != len(names) || len(got) != len(body.MergeFields) {
		t.Fatalf("%q: fast %v, encoding/json %+v", b, got, body)
	}
	for k, v := range body.MergeFields {
		if got[k] != v {
			t.Fatalf("%q: fast %v, encoding/json %+v", b, got, body)
		}
	}
}
