package api_test

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp/esptest"
)

func connectBody(e *env, name string) string {
	return mustJSON(map[string]any{"name": name, "credentials": map[string]string{"api_key": e.fakes["klaviyo"].Secret()}})
}

// TestIdempotencyKey: replay, reuse with another request, scoping per account, which answers are kept.
func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	post := func(key, body, idem string) response {
		return e.call(req{method: "POST", path: "/v1/integrations/klaviyo/connections", key: key, body: body,
			header: map[string]string{"Idempotency-Key": idem}})
	}
	first := post("", connectBody(e, "One"), "key-1")
	expect(t, "first", first, 201, "")
	if first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("first answer marked replayed")
	}
	again := post("", connectBody(e, "One"), "key-1")
	expect(t, "replay", again, 201, "")
	if again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, first.Body) {
		t.Fatalf("replay: header %q, body %s vs %s", again.Header.Get("Idempotent-Replayed"), again.Body, first.Body)
	}
	if n := e.count("connections"); n != 1 {
		t.Fatalf("replay created a connection: %d", n)
	}
	expect(t, "same key, other body", post("", connectBody(e, "Two"), "key-1"), 422, "idempotency_key_reused")
	r := e.call(req{method: "POST", path: cnxPath("klaviyo", first.str("id"), "sync"), header: map[string]string{"Idempotency-Key": "key-1"}})
	expect(t, "same key, other endpoint", r, 422, "idempotency_key_reused")
	// Keys are per account.
	expect(t, "same key, other account", post(e.key2, connectBody(e, "One"), "key-1"), 201, "")
	// A final 4xx is kept and replayed.
	bad := `{"credentials":{}}`
	expect(t, "400 first", post("", bad, "key-400"), 400, "missing_credentials")
	if r := post("", bad, "key-400"); r.Status != 400 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("400 not replayed: %d %v", r.Status, r.Header)
	}
	// 402 is transient: after credits arrive the same key runs again.
	broke, brokeKey := e.newAccount(ctx, "Broke", 0)
	expect(t, "402", post(brokeKey, connectBody(e, "Three"), "key-402"), 402, "insufficient_credits")
	if _, err := e.st.AddCredits(ctx, broke, 5, "", ""); err != nil {
		t.Fatal(err)
	}
	if r := post(brokeKey, connectBody(e, "Three"), "key-402"); r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry after 402: %d %s", r.Status, r.Body)
	}
	// Sync under a key replays the same run.
	s1 := e.call(req{method: "POST", path: cnxPath("klaviyo", first.str("id"), "sync"), header: map[string]string{"Idempotency-Key": "sync-1"}})
	s2 := e.call(req{method: "POST", path: cnxPath("klaviyo", first.str("id"), "sync"), header: map[string]string{"Idempotency-Key": "sync-1"}})
	if s1.Status != 202 || s2.Status != 202 || s1.str("run_id") != s2.str("run_id") || s2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("sync replay: %s / %s", s1.Body, s2.Body)
	}
}

// TestIdempotencyConcurrent: twenty concurrent connects with one key create exactly one connection; the
// others get 409 while it is in flight or the replay after; a request during the flight is 409.
func TestIdempotencyConcurrent(t *testing.T) {
	e := newEnv(t, envOpts{klFaults: esptest.Faults{Latency: 300 * time.Millisecond}})
	body := connectBody(e, "Concurrent")
	var wg sync.WaitGroup
	results := make([]response, 20)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = e.call(req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: body,
				header: map[string]string{"Idempotency-Key": "twenty"}})
		}(i)
	}
	wg.Wait()
	created, replayed, inFlight := 0, 0, 0
	var id string
	for _, r := range results {
		switch {
		case r.Status == 201 && r.Header.Get("Idempotent-Replayed") == "":
			created++
			id = r.str("id")
		case r.Status == 201:
			replayed++
		case r.Status == 409 && r.errCode() == "idempotency_request_in_progress":
			inFlight++
		default:
			t.Fatalf("unexpected answer %d: %s", r.Status, r.Body)
		}
	}
	if created != 1 || e.count("connections") != 1 {
		t.Fatalf("%d created answers, %d connections stored; want 1 and 1", created, e.count("connections"))
	}
	if inFlight == 0 {
		t.Fatalf("no request saw the key in flight (%d replayed)", replayed)
	}
	r := e.call(req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: body, header: map[string]string{"Idempotency-Key": "twenty"}})
	if r.Status != 201 || r.str("id") != id || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("after the flight: %d %s", r.Status, r.Body)
	}

	// A different body during the flight is 422, the same body 409.
	done := make(chan response)
	go func() {
		done <- e.call(req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: connectBody(e, "Slow"),
			header: map[string]string{"Idempotency-Key": "slow"}})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.count("idempotency_keys") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the first request never claimed the key")
		}
		time.Sleep(5 * time.Millisecond)
	}
	expect(t, "same body in flight", e.call(req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: connectBody(e, "Slow"),
		header: map[string]string{"Idempotency-Key": "slow"}}), http.StatusConflict, "idempotency_request_in_progress")
	expect(t, "other body in flight", e.call(req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: connectBody(e, "Other"),
		header: map[string]string{"Idempotency-Key": "slow"}}), 422, "idempotency_key_reused")
	expect(t, "the slow one", <-done, 201, "")
	if e.count("connections") != 2 {
		t.Fatalf("%d connections, want 2", e.count("connections"))
	}
}
