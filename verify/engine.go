package verify

import (
	"context"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Options configure an Engine. Zero values take the defaults noted per field.
type Options struct {
	DNSServers  []string      // host:port; default: the servers of /etc/resolv.conf
	DNSTimeout  time.Duration // per query and server; default 3s
	PositiveTTL time.Duration // cache lifetime of a found answer (and of a catch-all verdict); default 1h
	NegativeTTL time.Duration // cache lifetime of NXDOMAIN/no data/failures; default 5m

	SMTPPort           int            // default 25
	HostPorts          map[string]int // per-MX-host port override (tests, sandboxes)
	HELO               string         // default "localhost"
	MailFrom           string         // default "verify@localhost"
	ConnectTimeout     time.Duration  // TCP connect and the greeting; default StepTimeout
	StepTimeout        time.Duration  // each SMTP command (EHLO/HELO, MAIL, RCPT, RSET); default 10s
	PerHostConcurrency int            // SMTP sessions at once per MX host; default 4
	RcptPerTransaction int            // recipients between RSETs; default 50
	RcptPerSession     int            // recipients per SMTP session (larger groups use more sessions); default 500
	IdleTimeout        time.Duration  // a healthy session is kept this long for the next batch; default 10s, <0 = never kept
	DomainConcurrency  int            // domains probed at once by VerifyBatch; default 32
	// NoPipelining sends every SMTP command in lock-step (wait for its reply)
	// even when the server advertises PIPELINING (RFC 2920). By default the
	// RCPTs of a session (with the MAIL FROM and RSETs around them) go in
	// groups, one write per group; the outcomes are the same either way.
	NoPipelining bool

	Lists         *Lists         // nil = the embedded lists
	ProviderRules *ProviderRules // nil = the rules shipped with Lists
	Suggester     *Suggester     // nil = built from Lists' popular domains

	// Dial opens SMTP connections; default a net.Dialer. Tests keep it real TCP.
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Now    func() time.Time // default time.Now
	Logger zerolog.Logger   // default: disabled. Addresses are never logged.
}

// Engine verifies addresses. Build one with New and share it: it holds the DNS
// cache, the catch-all cache and the per-host SMTP limits of a process.
type Engine struct {
	opt     Options
	lists   *Lists
	prov    *ProviderRules
	sugg    *Suggester
	dns     *resolver
	prober  *prober
	smtpCon atomic.Int64
	probes  atomic.Int64
}

// New builds an engine.
func New(o Options) (*Engine, error) {
	if len(o.DNSServers) == 0 {
		o.DNSServers = SystemDNSServers()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.DNSTimeout, 3*time.Second)
	def(&o.PositiveTTL, time.Hour)
	def(&o.NegativeTTL, 5*time.Minute)
	def(&o.StepTimeout, 10*time.Second)
	def(&o.ConnectTimeout, o.StepTimeout)
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 10 * time.Second
	}
	defi := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	defi(&o.SMTPPort, 25)
	defi(&o.PerHostConcurrency, 4)
	defi(&o.RcptPerTransaction, 50)
	defi(&o.RcptPerSession, 500)
	defi(&o.DomainConcurrency, 32)
	if o.HELO == "" {
		o.HELO = "localhost"
	}
	if o.MailFrom == "" {
		o.MailFrom = "verify@localhost"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Dial == nil {
		d := &net.Dialer{}
		o.Dial = d.DialContext
	}
	if o.Lists == nil {
		l, err := EmbeddedLists()
		if err != nil {
			return nil, err
		}
		o.Lists = l
	}
	if o.ProviderRules == nil {
		o.ProviderRules = o.Lists.Providers()
	}
	if o.Suggester == nil {
		o.Suggester = NewSuggester(o.Lists.Popular(), nil)
	}
	e := &Engine{opt: o, lists: o.Lists, prov: o.ProviderRules, sugg: o.Suggester}
	e.dns = newResolver(o.DNSServers, o.DNSTimeout, o.PositiveTTL, o.NegativeTTL, o.Now)
	e.prober = &prober{e: e, pools: map[string]*hostPool{}, catchAll: map[string]catchAllEntry{}}
	return e, nil
}

// Stats are counters since the engine was built.
type Stats struct {
	DNSQueries      int64 `json:"dns_queries"`
	SMTPConnections int64 `json:"smtp_connections"`
	SMTPProbes      int64 `json:"smtp_probes"` // recipients checked over SMTP
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{DNSQueries: e.dns.queries.Load(), SMTPConnections: e.smtpCon.Load(), SMTPProbes: e.probes.Load()}
}

// Lists returns the lists in use.
func (e *Engine) Lists() *Lists { return e.lists }

// Verify verifies one address.
func (e *Engine) Verify(ctx context.Context, in Input, want Checks) Result {
	return e.VerifyBatch(ctx, []Input{in}, want)[0]
}

// work is the in-progress state of one input.
type work struct {
	res      *Result // the caller's result, filled in place
	addr     Address
	start    time.Time
	done     bool
	found    Reason // best reason so far ("" = none)
	mx       []string
	dnsDur   time.Duration
	needSMTP bool
}

func (w *work) find(r Reason) {
	if w.found == "" || r.Precedes(w.found) {
		w.found = r
	}
}

func (w *work) ran(s string) { w.res.Evidence.Ran = append(w.res.Evidence.Ran, s) }

// stop reports whether the engine may stop: a wanted check found a problem.
func (w *work) stop(want Checks) bool {
	return w.found != "" && want&NoEarlyStop == 0 && want.Has(w.found)
}

// VerifyBatch verifies many addresses; results are in input order. Addresses
// of one domain share the DNS answer and SMTP sessions (one session per up to
// RcptPerSession recipients, RSET every RcptPerTransaction).
func (e *Engine) VerifyBatch(ctx context.Context, ins []Input, want Checks) []Result {
	out := make([]Result, len(ins))
	wv := make([]work, len(ins))
	ws := make([]*work, len(ins))
	for i, in := range ins {
		ws[i] = &wv[i]
		wv[i].res = &out[i]
		e.local(&wv[i], in, want)
	}
	e.remoteWork(ctx, ws, want)
	for _, w := range ws {
		e.finish(w)
	}
	return out
}

// remoteWork runs DNS and SMTP for the works that need them.
func (e *Engine) remoteWork(ctx context.Context, ws []*work, want Checks) {
	remaining := false
	for _, w := range ws {
		if !w.done {
			remaining = true
			break
		}
	}
	if !remaining {
		return
	}
	// DNS, per domain concurrently (single-flight makes duplicates free).
	byDomain := map[string][]*work{}
	var order []string
	for _, w := range ws {
		if w.done {
			continue
		}
		d := w.addr.Domain
		if _, ok := byDomain[d]; !ok {
			order = append(order, d)
		}
		byDomain[d] = append(byDomain[d], w)
	}
	sem := make(chan struct{}, e.opt.DomainConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var pending []smtpWork
	for _, d := range order {
		group := byDomain[d]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if sw, ok := e.remote(ctx, d, group, want); ok {
				mu.Lock()
				pending = append(pending, sw)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	e.probeAll(ctx, pending, want)
}

func (e *Engine) finish(w *work) {
	r := w.found
	if r == "" {
		r = ReasonValid
	}
	w.res.Reason = r
	w.res.Status = r.Status()
	w.res.Evidence.Duration = e.opt.Now().Sub(w.start)
	w.res.Evidence.DNSDuration = w.dnsDur
	w.res.VerifiedAt = e.opt.Now().UTC()
}

// local runs the checks without network: syntax, lists, platform status, typo suggestion.
func (e *Engine) local(w *work, in Input, want Checks) {
	w.start = e.opt.Now()
	w.res.Evidence.Ran = make([]string, 0, 5)
	raw := strings.TrimSpace(in.Email)
	w.res.Email = raw
	w.ran("syntax")
	a, err := ParseAddress(raw)
	if err != nil {
		w.find(ReasonInvalid)
		w.done = true
		if at := strings.LastIndexByte(raw, '@'); at > 0 {
			dom := strings.ToLower(raw[at+1:])
			w.res.Domain = dom
			if _, lerr := ParseAddress(raw[:at] + "@example.com"); lerr == nil {
				w.res.Suggestion = e.sugg.SuggestAddress(raw[:at], dom)
			}
		}
		return
	}
	w.addr = a
	w.res.Email = a.stringFrom(raw)
	w.res.Domain = a.Domain
	l := e.lists
	// lists
	w.ran("lists")
	local := strings.ToLower(a.Local)
	if want.Has(ReasonSpam) && l.IsSpamTrap(local, a.Domain) {
		w.res.Evidence.Lists = append(w.res.Evidence.Lists, string(ListSpamTrap))
		w.find(ReasonSpam)
	}
	if want.Has(ReasonRole) && l.IsRole(local) {
		w.res.Role = true
		w.res.Evidence.Lists = append(w.res.Evidence.Lists, string(ListRole))
		w.find(ReasonRole)
	}
	if want.Has(ReasonBanned) && (l.HasBannedWord(local) || l.HasBannedWord(a.Domain)) {
		w.res.Evidence.Lists = append(w.res.Evidence.Lists, string(ListBanned))
		w.find(ReasonBanned)
	}
	if want.Has(ReasonDisposable) && l.IsDisposable(a.Domain) {
		w.res.Disposable = true
		w.res.Evidence.Lists = append(w.res.Evidence.Lists, string(ListDisposable))
		w.find(ReasonDisposable)
	}
	if l.IsFree(a.Domain) {
		w.res.Free = true
		w.res.Evidence.Lists = append(w.res.Evidence.Lists, string(ListFree))
	}
	// platform status
	switch strings.ToLower(in.PlatformStatus) {
	case PlatformComplained:
		if want.Has(ReasonComplainer) {
			w.find(ReasonComplainer)
		}
	case PlatformBounced:
		if want.Has(ReasonBounced) {
			w.find(ReasonBounced)
		}
	}
	// typo suggestion (informational)
	w.ran("suggest")
	w.res.Suggestion = e.sugg.SuggestAddress(a.Local, a.Domain)
	if w.stop(want) {
		w.done = true
		return
	}
	// provider rules: never probed, verdict by rule
	if v, ok := e.prov.ForDomain(a.Domain); ok {
		w.res.Evidence.Provider = a.Domain
		if v == ReasonAcceptAll && want.Has(ReasonAcceptAll) {
			w.find(ReasonAcceptAll)
		}
		w.done = true
		return
	}
	if !want.WantsDNS() {
		w.done = true
	}
}

// smtpWork is one domain's recipients waiting for the SMTP probe.
type smtpWork struct {
	domain string
	mx     []string
	works  []*work
}

// Close ends the idle SMTP sessions the engine keeps for reuse.
func (e *Engine) Close() { e.prober.close() }

// remote runs DNS for the works of one domain and returns those that need the SMTP probe.
func (e *Engine) remote(ctx context.Context, domain string, group []*work, want Checks) (smtpWork, bool) {
	t0 := e.opt.Now()
	info, cached := e.dns.mail(ctx, domain)
	dur := e.opt.Now().Sub(t0)
	var ns []string
	var nsErr string
	parked := false
	if want.Has(ReasonAvailable) && (info.outcome == dnsOK) {
		ns, nsErr = e.dns.ns(ctx, domain)
		for _, h := range ns {
			if e.lists.IsParkingHost(h) {
				parked = true
			}
		}
		if !info.implicit {
			for _, h := range info.mx {
				if e.lists.IsParkingHost(h) {
					parked = true
				}
			}
		}
	}
	_ = nsErr
	var provVerdict Reason
	var provHost string
	if info.outcome == dnsOK && len(info.mx) > 0 && !info.implicit {
		provVerdict, provHost, _ = e.prov.ForMX(info.mx[0])
	}
	// one copy of the answer per domain: the group's results share it (capacity
	// = length, so an append by a caller copies)
	var mxCopy, nsCopy []string
	if len(info.mx) > 0 {
		mxCopy = append(make([]string, 0, len(info.mx)), info.mx...)
	}
	if len(ns) > 0 {
		nsCopy = append(make([]string, 0, len(ns)), ns...)
	}
	var smtp []*work
	for _, w := range group {
		w.ran("dns")
		w.dnsDur = dur
		ev := &w.res.Evidence
		ev.DNSCached = cached
		ev.MX = mxCopy
		ev.ImplicitMX = info.implicit
		ev.DNSError = info.err
		ev.NS = nsCopy
		switch info.outcome {
		case dnsNXDomain, dnsNoMail:
			w.find(ReasonIllegitimate)
			continue
		case dnsNullMX:
			ev.NullMX = true
			ev.MX = nil
			w.find(ReasonIllegitimate)
			continue
		case dnsTemp:
			w.find(ReasonUnverified)
			continue
		}
		if parked {
			w.res.Evidence.Lists = append(w.res.Evidence.Lists, string(ListParking))
			w.find(ReasonAvailable)
		}
		if w.stop(want) || !want.WantsSMTP() {
			continue
		}
		if provVerdict != "" {
			ev.Provider = provHost
			if provVerdict == ReasonAcceptAll && want.Has(ReasonAcceptAll) {
				w.find(ReasonAcceptAll)
			}
			continue
		}
		smtp = append(smtp, w)
	}
	if len(smtp) == 0 {
		return smtpWork{}, false
	}
	return smtpWork{domain: domain, mx: info.mx, works: smtp}, true
}

// probeAll groups the SMTP work by exchanger set (domains served by the same
// MX hosts share sessions), cuts each group into sessions of at most
// RcptPerSession distinct recipients and runs them concurrently (the per-host
// cap bounds how many talk to one host at once).
func (e *Engine) probeAll(ctx context.Context, pending []smtpWork, want Checks) {
	if len(pending) == 0 {
		return
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].domain < pending[j].domain })
	groups := map[string][]smtpWork{}
	var keys []string
	for _, sw := range pending {
		k := strings.Join(sw.mx, ",")
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], sw)
	}
	type session struct {
		mx   []string
		reqs []domainReq
		ws   [][]*work // per req: the works, with idx into locals
		idx  []map[string]int
	}
	var sessions []*session
	for _, k := range keys {
		cur := &session{}
		n := 0
		for _, sw := range groups[k] {
			// split this domain across sessions when it alone exceeds the session size
			dedup := map[string]int{}
			var dl []string
			var dws []*work
			flushDomain := func() {
				if len(dl) == 0 {
					return
				}
				cur.mx = sw.mx
				cur.reqs = append(cur.reqs, domainReq{domain: sw.domain, locals: dl, wantCatchAll: want.Has(ReasonAcceptAll)})
				cur.ws = append(cur.ws, dws)
				cur.idx = append(cur.idx, dedup)
				dedup, dl, dws = map[string]int{}, nil, nil
			}
			for _, w := range sw.works {
				l := strings.ToLower(w.addr.Local)
				if _, ok := dedup[l]; !ok {
					if n >= e.opt.RcptPerSession {
						flushDomain()
						sessions = append(sessions, cur)
						cur, n = &session{}, 0
					}
					dedup[l] = len(dl)
					dl = append(dl, w.addr.Local)
					n++
				}
				dws = append(dws, w)
			}
			flushDomain()
		}
		if len(cur.reqs) > 0 {
			sessions = append(sessions, cur)
		}
	}
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := e.opt.Now()
			res := e.prober.probe(ctx, s.mx, s.reqs)
			dur := e.opt.Now().Sub(t0)
			if len(res) > 0 && len(res[0].rcpts) > 0 {
				if o := res[0].rcpts[0]; o.reason == ReasonFailedExchange || o.step == "mail" || o.step == "greeting" {
					e.opt.Logger.Debug().Strs("mx", s.mx).Str("step", o.step).Int("code", o.code).Str("error", o.neterr).
						Int("domains", len(s.reqs)).Msg("smtp probe could not check recipients")
				}
			}
			for i := range s.reqs {
				e.probes.Add(int64(len(s.reqs[i].locals)))
				for _, w := range s.ws[i] {
					o := res[i].rcpts[s.idx[i][strings.ToLower(w.addr.Local)]]
					ev := &w.res.Evidence
					w.ran("smtp")
					ev.SMTPDuration = dur
					ev.MXHost = o.mxHost
					ev.SMTPCode = o.code
					ev.SMTPText = o.text
					ev.SMTPStep = o.step
					ev.SMTPError = o.neterr
					ev.CatchAll = res[i].catchAll
					r := o.reason
					if r == ReasonAcceptAll && !want.Has(ReasonAcceptAll) {
						r = ReasonValid
					}
					if r != ReasonValid {
						w.find(r)
					}
				}
			}
		}()
	}
	wg.Wait()
}
