package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/autofloss/autofloss/internal/testenv"
)

// TestServeSandbox runs `serve -sandbox` in-process on SQLite and a private Redis, reads the printed quick
// start, and follows it: the printed key authenticates against the real API, the printed klaviyo
// credentials connect (the API validates them live against the fake), the dashboard link works.
func TestServeSandbox(t *testing.T) {
	redis := testenv.Redis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := writeConfig(t, testenv.SQLite(t), redis)
	body := strings.Replace(string(mustRead(t, cfg)), `listen: "127.0.0.1:0"`, fmt.Sprintf("listen: %q", addr), 1) +
		"sandbox:\n  contacts: 300\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-sandbox", "-config", cfg}, strings.NewReader(""), &out, &logs)
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exit %d\n%s", code, logs.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not up: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	banner := out.String()
	key := regexp.MustCompile(`API key\s+(mf_live_\S+)`).FindStringSubmatch(banner)
	creds := regexp.MustCompile(`(?m)^\s+klaviyo\s+http://127\.0\.0\.1:\d+\s+(\{.*\})$`).FindStringSubmatch(banner)
	curl := regexp.MustCompile(`curl -s -X POST (\S+/v1/integrations/klaviyo/connections) .* -d '(.*)'`).FindStringSubmatch(banner)
	queues := regexp.MustCompile(`queues\s+(\S+)`).FindStringSubmatch(banner)
	if key == nil || creds == nil || curl == nil || queues == nil {
		t.Fatalf("banner lacks the key, klaviyo credentials, connect line or dashboard:\n%s", banner)
	}
	if strings.Contains(logs.String(), key[1]) || strings.Contains(logs.String(), creds[1]) {
		t.Fatal("a secret reached the log")
	}
	if curl[1] != base+"/v1/integrations/klaviyo/connections" {
		t.Fatalf("connect URL %s", curl[1])
	}
	do := func(method, url, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key[1])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	if code, _ := do("GET", base+"/v1/integrations", ""); code != 200 {
		t.Fatalf("GET /v1/integrations with the printed key: %d", code)
	}
	code, cnx := do("POST", curl[1], curl[2])
	if code != 201 || cnx["status"] != "active" {
		t.Fatalf("connect with the printed line: %d %v", code, cnx)
	}
	resp, err := http.Get(queues[1])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("dashboard link: %d", resp.StatusCode)
	}
}
