package verify

import (
	"context"
	"errors"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// dnsOutcome classifies a domain's mail setup.
type dnsOutcome int

const (
	dnsOK       dnsOutcome = iota // MX records, or the A/AAAA fallback
	dnsNXDomain                   // the domain does not exist
	dnsNullMX                     // RFC 7505: the domain accepts no mail
	dnsNoMail                     // exists, but neither MX nor A/AAAA
	dnsTemp                       // SERVFAIL, timeout, refused: we cannot tell
)

type domainInfo struct {
	outcome  dnsOutcome
	mx       []string // preference order; the domain itself when implicit
	implicit bool
	err      string
	expires  time.Time
}

type nsInfo struct {
	ns      []string
	err     string
	expires time.Time
}

type hostInfo struct {
	addrs   []string
	err     string
	expires time.Time
}

// resolver is a caching, single-flight stub resolver over miekg/dns.
type resolver struct {
	servers []string
	timeout time.Duration
	posTTL  time.Duration
	negTTL  time.Duration
	now     func() time.Time

	udp, tcp *dns.Client
	sf       singleflight.Group

	mu    sync.Mutex
	doms  map[string]*domainInfo
	nss   map[string]*nsInfo
	hosts map[string]*hostInfo

	queries atomic.Int64
}

const maxCacheEntries = 200_000

func newResolver(servers []string, timeout, pos, neg time.Duration, now func() time.Time) *resolver {
	return &resolver{
		servers: servers, timeout: timeout, posTTL: pos, negTTL: neg, now: now,
		udp:  &dns.Client{Net: "udp", Timeout: timeout, UDPSize: 4096},
		tcp:  &dns.Client{Net: "tcp", Timeout: timeout},
		doms: map[string]*domainInfo{}, nss: map[string]*nsInfo{}, hosts: map[string]*hostInfo{},
	}
}

// SystemDNSServers returns the name servers of /etc/resolv.conf as host:port
// (127.0.0.1:53 when the file is missing or empty).
func SystemDNSServers() []string {
	cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(cfg.Servers) == 0 {
		return []string{"127.0.0.1:53"}
	}
	out := make([]string, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	return out
}

var errDNSTemp = errors.New("dns temporary failure")

// query asks each server in turn until one answers (any rcode). A transport
// failure at every server is a temporary error (timeout/unreachable).
func (r *resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	lastErr := "unreachable"
	for _, s := range r.servers {
		if ctx.Err() != nil {
			return nil, "canceled", ctx.Err()
		}
		r.queries.Add(1)
		qctx, cancel := context.WithTimeout(ctx, r.timeout)
		resp, _, err := r.udp.ExchangeContext(qctx, m, s)
		if err == nil && resp != nil && resp.Truncated {
			r.queries.Add(1)
			resp, _, err = r.tcp.ExchangeContext(qctx, m, s)
		}
		cancel()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
				lastErr = "timeout"
			} else {
				lastErr = "unreachable"
			}
			continue
		}
		return resp, "", nil
	}
	return nil, lastErr, errDNSTemp
}

func rcodeErr(rc int) string { return strings.ToLower(dns.RcodeToString[rc]) }

// mail looks up the mail setup of a domain, from the cache when fresh. cached
// reports whether no query was needed.
func (r *resolver) mail(ctx context.Context, domain string) (info *domainInfo, cached bool) {
	r.mu.Lock()
	if d, ok := r.doms[domain]; ok && r.now().Before(d.expires) {
		r.mu.Unlock()
		return d, true
	}
	r.mu.Unlock()
	v, _, _ := r.sf.Do("mx:"+domain, func() (any, error) {
		// re-check: another flight may have just finished
		r.mu.Lock()
		if d, ok := r.doms[domain]; ok && r.now().Before(d.expires) {
			r.mu.Unlock()
			return d, nil
		}
		r.mu.Unlock()
		d := r.lookupMail(context.WithoutCancel(ctx), domain)
		if d.outcome == dnsOK {
			d.expires = r.now().Add(r.posTTL)
		} else {
			d.expires = r.now().Add(r.negTTL)
		}
		r.mu.Lock()
		if len(r.doms) > maxCacheEntries {
			r.sweepLocked()
		}
		r.doms[domain] = d
		r.mu.Unlock()
		return d, nil
	})
	return v.(*domainInfo), false
}

func (r *resolver) sweepLocked() {
	now := r.now()
	for k, v := range r.doms {
		if !now.Before(v.expires) {
			delete(r.doms, k)
		}
	}
	for k, v := range r.hosts {
		if !now.Before(v.expires) {
			delete(r.hosts, k)
		}
	}
	for k, v := range r.nss {
		if !now.Before(v.expires) {
			delete(r.nss, k)
		}
	}
}

type mxRec struct {
	pref uint16
	host string
}

func (r *resolver) lookupMail(ctx context.Context, domain string) *domainInfo {
	resp, e, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		return &domainInfo{outcome: dnsTemp, err: e}
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return &domainInfo{outcome: dnsNXDomain, err: "nxdomain"}
	default:
		return &domainInfo{outcome: dnsTemp, err: rcodeErr(resp.Rcode)}
	}
	var mxs []mxRec
	for _, rr := range resp.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, mxRec{mx.Preference, strings.ToLower(strings.TrimSuffix(mx.Mx, "."))})
		}
	}
	if len(mxs) == 1 && mxs[0].host == "" {
		return &domainInfo{outcome: dnsNullMX, err: "null_mx"}
	}
	if len(mxs) > 0 {
		sort.SliceStable(mxs, func(i, j int) bool {
			if mxs[i].pref != mxs[j].pref {
				return mxs[i].pref < mxs[j].pref
			}
			return mxs[i].host < mxs[j].host
		})
		d := &domainInfo{outcome: dnsOK}
		for _, m := range mxs {
			if m.host != "" { // a "." among real MXs is ignored
				d.mx = append(d.mx, m.host)
			}
		}
		return d
	}
	// RFC 5321 §5.1: no MX → the domain itself, if it has an address.
	addrs, e2, err := r.addrs(ctx, domain)
	if err != nil {
		return &domainInfo{outcome: dnsTemp, err: e2}
	}
	if len(addrs) == 0 {
		return &domainInfo{outcome: dnsNoMail, err: "no_mx_no_a"}
	}
	return &domainInfo{outcome: dnsOK, mx: []string{domain}, implicit: true}
}

// addrs queries A then AAAA for name (uncached).
func (r *resolver) addrs(ctx context.Context, name string) ([]string, string, error) {
	var out []string
	nx := false
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		resp, e, err := r.query(ctx, name, qt)
		if err != nil {
			if len(out) > 0 {
				break
			}
			return nil, e, err
		}
		switch resp.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			nx = true
		default:
			if len(out) > 0 {
				break
			}
			return nil, rcodeErr(resp.Rcode), errDNSTemp
		}
		for _, rr := range resp.Answer {
			switch a := rr.(type) {
			case *dns.A:
				out = append(out, a.A.String())
			case *dns.AAAA:
				out = append(out, a.AAAA.String())
			}
		}
		if nx || len(out) > 0 {
			break // an IPv4 address is enough to dial; AAAA only when there is no A
		}
	}
	return out, "", nil
}

// host resolves an MX host to addresses, cached and single-flight.
func (r *resolver) host(ctx context.Context, name string) ([]string, string) {
	if ip := net.ParseIP(name); ip != nil {
		return []string{name}, ""
	}
	r.mu.Lock()
	if h, ok := r.hosts[name]; ok && r.now().Before(h.expires) {
		r.mu.Unlock()
		return h.addrs, h.err
	}
	r.mu.Unlock()
	v, _, _ := r.sf.Do("host:"+name, func() (any, error) {
		addrs, e, err := r.addrs(context.WithoutCancel(ctx), name)
		h := &hostInfo{addrs: addrs, err: e}
		if err == nil && len(addrs) == 0 {
			h.err = "no_address"
		}
		if len(addrs) > 0 {
			h.expires = r.now().Add(r.posTTL)
		} else {
			h.expires = r.now().Add(r.negTTL)
		}
		r.mu.Lock()
		r.hosts[name] = h
		r.mu.Unlock()
		return h, nil
	})
	h := v.(*hostInfo)
	return h.addrs, h.err
}

// ns returns the name servers of a domain (cached, single-flight). Parking
// services are detected on them.
func (r *resolver) ns(ctx context.Context, domain string) ([]string, string) {
	r.mu.Lock()
	if n, ok := r.nss[domain]; ok && r.now().Before(n.expires) {
		r.mu.Unlock()
		return n.ns, n.err
	}
	r.mu.Unlock()
	v, _, _ := r.sf.Do("ns:"+domain, func() (any, error) {
		n := &nsInfo{}
		resp, e, err := r.query(context.WithoutCancel(ctx), domain, dns.TypeNS)
		switch {
		case err != nil:
			n.err = e
		case resp.Rcode != dns.RcodeSuccess:
			n.err = rcodeErr(resp.Rcode)
		default:
			for _, rr := range append(resp.Answer, resp.Ns...) {
				if x, ok := rr.(*dns.NS); ok {
					n.ns = append(n.ns, strings.ToLower(strings.TrimSuffix(x.Ns, ".")))
				}
			}
		}
		if n.err == "" {
			n.expires = r.now().Add(r.posTTL)
		} else {
			n.expires = r.now().Add(r.negTTL)
		}
		r.mu.Lock()
		r.nss[domain] = n
		r.mu.Unlock()
		return n, nil
	})
	n := v.(*nsInfo)
	return n.ns, n.err
}
