package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/autofloss/autofloss/store"
)

// DemoAccountName names the sandbox's demo account; it is reused across starts.
const DemoAccountName = "Sandbox demo"

// Demo is the demo account of a sandbox start.
type Demo struct {
	AccountID string
	APIKey    string // shown once: only its hash is stored
	Balance   int64
}

// EnsureDemo finds (or creates) the demo account, tops its balance up to credits, and creates a fresh API
// key for this start (keys cannot be shown twice, so every start prints a new one; earlier ones stay valid
// until revoked with `autofloss apikeys revoke`).
func EnsureDemo(ctx context.Context, st *store.Store, credits int64) (Demo, error) {
	accs, err := st.ListAccounts(ctx)
	if err != nil {
		return Demo{}, err
	}
	var id string
	for _, a := range accs {
		if a.Name == DemoAccountName {
			id = a.ID
			break
		}
	}
	if id == "" {
		a, err := st.CreateAccount(ctx, DemoAccountName)
		if err != nil {
			return Demo{}, err
		}
		id = a.ID
	}
	bal, err := st.Balance(ctx, id)
	if err != nil {
		return Demo{}, err
	}
	if bal < credits {
		if bal, err = st.AddCredits(ctx, id, credits-bal, "", "grant"); err != nil {
			return Demo{}, err
		}
	}
	key, _, err := st.CreateAPIKey(ctx, id)
	if err != nil {
		return Demo{}, err
	}
	return Demo{AccountID: id, APIKey: key, Balance: bal}, nil
}

// BaseURL turns a listen address (":8080", "0.0.0.0:8080", "127.0.0.1:9000") into the URL a local user types.
func BaseURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://localhost:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// PrintBanner writes the quick start of a sandbox start: the demo API key (printed once, here only), the
// asynqmon URL, every platform fake with its valid credentials, and a ready-to-paste connect line.
// It goes to stdout, never to the log.
func (sb *Sandbox) PrintBanner(w io.Writer, d Demo, baseURL, adminToken string) {
	fmt.Fprintf(w, "\n=== autofloss sandbox: platform fakes and a mail world on loopback; nothing leaves this machine ===\n\n")
	fmt.Fprintf(w, "  API          %s/v1\n", baseURL)
	fmt.Fprintf(w, "  API key      %s   (shown once; demo account %s, %d credits)\n", d.APIKey, d.AccountID, d.Balance)
	if adminToken != "" {
		fmt.Fprintf(w, "  queues       %s/ops/queues/?token=%s\n", baseURL, adminToken)
	}
	fmt.Fprintf(w, "\n  platform fakes (%d contacts each) and their valid credentials:\n", sb.Contacts)
	var first *Platform
	for i := range sb.Platforms {
		p := &sb.Platforms[i]
		note := ""
		if !p.Connectable {
			note = "   (not connectable through the API: OAuth consent only)"
		} else if first == nil || p.Slug == "klaviyo" {
			first = p
		}
		fmt.Fprintf(w, "    %-16s %-24s %s%s\n", p.Slug, p.URL, credsJSON(p.Credentials), note)
	}
	if first == nil {
		fmt.Fprintln(w)
		return
	}
	auth := fmt.Sprintf(`-H "Authorization: Bearer %s"`, d.APIKey)
	body := fmt.Sprintf(`{"name":"Sandbox %s","credentials":%s}`, first.Name, credsJSON(first.Credentials))
	fmt.Fprintf(w, "\n  connect %s, floss it now, watch the run:\n", first.Name)
	fmt.Fprintf(w, "    curl -s -X POST %s/v1/integrations/%s/connections %s -H \"Content-Type: application/json\" -d '%s'\n",
		baseURL, first.Slug, auth, body)
	fmt.Fprintf(w, "    curl -s -X POST %s/v1/integrations/%s/connections/<id>/sync %s\n", baseURL, first.Slug, auth)
	fmt.Fprintf(w, "    curl -s %s/v1/integrations/%s/connections/<id>/runs %s\n\n", baseURL, first.Slug, auth)
}

// credsJSON renders credentials as compact JSON with sorted keys.
func credsJSON(c map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range sortedKeys(c) {
		if i > 0 {
			b.WriteByte(',')
		}
		kj, _ := json.Marshal(k)
		vj, _ := json.Marshal(c[k])
		b.Write(kj)
		b.WriteByte(':')
		b.Write(vj)
	}
	b.WriteByte('}')
	return b.String()
}
