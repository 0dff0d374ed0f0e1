package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rcptOutcome is what the probe learned about one recipient.
type rcptOutcome struct {
	reason Reason // valid, nonexistent, inbox_full, deactivated, unverified, failed_exchange, accept_all
	code   int
	text   string
	step   string
	neterr string
	mxHost string
}

// domainReq asks the prober about some local parts of one domain.
type domainReq struct {
	domain       string
	locals       []string
	wantCatchAll bool
}

// domainRes answers a domainReq.
type domainRes struct {
	rcpts    []rcptOutcome
	catchAll *bool
}

type smtpStep struct {
	conn     net.Conn
	tp       *textproto.Conn
	timeout  time.Duration
	stop     func() bool // detaches the context watcher
	reused   bool        // taken from the idle pool
	lastUsed time.Time
}

// bind makes ctx cancellation abort the session's blocking I/O.
func (s *smtpStep) bind(ctx context.Context) {
	c := s.conn
	s.stop = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	s.reused = !s.lastUsed.IsZero()
}

func (s *smtpStep) unbind() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// quit says goodbye (bounded) and closes.
func (s *smtpStep) quit() {
	_ = s.conn.SetDeadline(time.Now().Add(minDur(s.timeout, time.Second)))
	_ = s.tp.PrintfLine("QUIT")
	_, _, _ = s.tp.ReadResponse(0)
	_ = s.conn.Close()
}

// do sends one command (or none for the greeting) and reads the reply within the step timeout.
func (s *smtpStep) do(cmd string) (int, string, error) {
	return s.doWithin(cmd, s.timeout)
}

func (s *smtpStep) doWithin(cmd string, timeout time.Duration) (int, string, error) {
	_ = s.conn.SetDeadline(time.Now().Add(timeout))
	if cmd != "" {
		if err := s.tp.PrintfLine("%s", cmd); err != nil {
			return 0, "", err
		}
	}
	code, msg, err := s.tp.ReadResponse(0)
	if err != nil {
		var te *textproto.Error
		if errors.As(err, &te) {
			return te.Code, te.Msg, nil
		}
		return 0, "", err
	}
	return code, msg, nil
}

func netErrClass(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	case strings.Contains(err.Error(), "refused"):
		return "refused"
	case strings.Contains(err.Error(), "EOF"):
		return "eof"
	}
	return "network"
}

// sanitizeText drops the probed address from a server reply (evidence must not
// leak addresses) and bounds its length.
func sanitizeText(text string, addrs ...string) string {
	text = strings.ReplaceAll(text, "\n", " ")
	for _, a := range addrs {
		if a != "" {
			text = replaceFold(text, a, "<address>")
		}
	}
	if len(text) > 200 {
		text = text[:200]
	}
	return text
}

func replaceFold(s, old, repl string) string {
	ls, lo := strings.ToLower(s), strings.ToLower(old)
	var b strings.Builder
	for {
		i := strings.Index(ls, lo)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, ls = s[i+len(old):], ls[i+len(old):]
	}
}

func containsAny(s string, words ...string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// ClassifyRCPT maps an RCPT reply to a reason: 2xx valid; 552 or quota text
// inbox_full; "disabled/inactive" text deactivated; policy/blocked replies and
// other 4xx unverified; 550/551/553 (and the 5.1.x class) nonexistent.
func ClassifyRCPT(code int, text string) Reason {
	t := strings.ToLower(text)
	quota := containsAny(t, "quota", "mailbox full", "mailbox is full", "full mailbox", "over the limit", "insufficient storage", "4.2.2", "5.2.2", "exceeded storage")
	disabled := containsAny(t, "disabled", "inactive", "deactivated", "suspended", "not active", "no longer active", "account closed", "5.2.1", "4.2.1")
	policy := containsAny(t, "spam", "block", "blacklist", "listed", "reputation", "policy", "denied", "relay", "5.7.", "rate limit", "too many")
	switch {
	case code >= 200 && code < 300:
		return ReasonValid
	case code == 552, code >= 400 && quota:
		return ReasonInboxFull
	case code >= 500 && disabled:
		return ReasonDeactivated
	case code >= 400 && code < 500:
		return ReasonUnverified
	case policy:
		return ReasonUnverified
	case code == 550, code == 551, code == 553, code == 554 && containsAny(t, "5.1.", "unknown", "no such", "not exist", "does not exist"), code == 501:
		return ReasonNonexistent
	case code >= 500:
		return ReasonUnverified
	}
	return ReasonUnverified
}

// prober runs SMTP sessions. Sessions are per MX host: recipients of every
// domain served by the same exchangers share them, and a healthy session is
// kept open (idle) for IdleTimeout so the next batch can reuse it. The
// per-host cap counts open sessions, idle ones included.
type prober struct {
	e *Engine

	poolMu sync.Mutex
	pools  map[string]*hostPool
	closed bool

	caMu     sync.Mutex
	catchAll map[string]catchAllEntry
}

type hostPool struct {
	slots chan struct{}  // one token per open session
	idle  chan *smtpStep // healthy sessions waiting for work
}

type catchAllEntry struct {
	v       bool
	expires time.Time
}

func (p *prober) pool(host string) *hostPool {
	p.poolMu.Lock()
	defer p.poolMu.Unlock()
	hp, ok := p.pools[host]
	if !ok {
		n := p.e.opt.PerHostConcurrency
		hp = &hostPool{slots: make(chan struct{}, n), idle: make(chan *smtpStep, n)}
		p.pools[host] = hp
	}
	return hp
}

// close ends every idle session (QUIT). Sessions in use end when their batch does.
func (p *prober) close() {
	p.poolMu.Lock()
	p.closed = true
	pools := p.pools
	p.pools = map[string]*hostPool{}
	p.poolMu.Unlock()
	for _, hp := range pools {
		for {
			select {
			case st := <-hp.idle:
				st.quit()
				<-hp.slots
				continue
			default:
			}
			break
		}
	}
}

func (p *prober) cachedCatchAll(domain string) (bool, bool) {
	p.caMu.Lock()
	defer p.caMu.Unlock()
	c, ok := p.catchAll[domain]
	if !ok || !p.e.opt.Now().Before(c.expires) {
		return false, false
	}
	return c.v, true
}

func (p *prober) storeCatchAll(domain string, v bool) {
	p.caMu.Lock()
	p.catchAll[domain] = catchAllEntry{v, p.e.opt.Now().Add(p.e.opt.PositiveTTL)}
	p.caMu.Unlock()
}

func randomLocal() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "af-probe-" + hex.EncodeToString(b[:])
}

// connFailure describes why no session could be had with one host.
type connFailure struct {
	step string
	code int
	text string
	err  error
}

// acquire returns a ready session with host (EHLO done): an idle one, or a
// new one when the host is under its cap; it waits for a slot otherwise.
func (p *prober) acquire(ctx context.Context, host string) (*smtpStep, *connFailure) {
	hp := p.pool(host)
	take := func(st *smtpStep) (*smtpStep, *connFailure) {
		if p.e.opt.Now().Sub(st.lastUsed) > p.e.opt.IdleTimeout {
			st.quit()
			return p.dialHeld(ctx, host, hp)
		}
		st.bind(ctx)
		return st, nil
	}
	select {
	case st := <-hp.idle:
		return take(st)
	default:
	}
	select {
	case st := <-hp.idle:
		return take(st)
	case hp.slots <- struct{}{}:
		return p.dialHeld(ctx, host, hp)
	case <-ctx.Done():
		return nil, &connFailure{step: "connect", err: ctx.Err()}
	}
}

// dialHeld dials while holding a slot; the slot is given back on failure.
func (p *prober) dialHeld(ctx context.Context, host string, hp *hostPool) (*smtpStep, *connFailure) {
	st, f := p.connect(ctx, host)
	if f != nil {
		<-hp.slots
		return nil, f
	}
	p.e.smtpCon.Add(1)
	return st, nil
}

// release returns a healthy session to the pool, or closes a broken one.
func (p *prober) release(host string, st *smtpStep, healthy bool) {
	hp := p.pool(host)
	st.unbind()
	p.poolMu.Lock()
	closed := p.closed
	p.poolMu.Unlock()
	if healthy && !closed && p.e.opt.IdleTimeout > 0 {
		st.lastUsed = p.e.opt.Now()
		select {
		case hp.idle <- st:
			return
		default:
		}
	}
	if healthy {
		st.quit()
	} else {
		_ = st.conn.Close()
	}
	<-hp.slots
}

// probe checks the requests through the MX hosts (shared by every domain of
// reqs) in preference order: the first host that gives a session is used, in
// one session for all requests (RSET every RcptPerTransaction recipients).
func (p *prober) probe(ctx context.Context, mxs []string, reqs []domainReq) []domainRes {
	res := make([]domainRes, len(reqs))
	var todo []int
	for i, r := range reqs {
		res[i].rcpts = make([]rcptOutcome, len(r.locals))
		if r.wantCatchAll {
			if v, ok := p.cachedCatchAll(r.domain); ok {
				vv := v
				res[i].catchAll = &vv
				if v {
					for j := range res[i].rcpts {
						res[i].rcpts[j] = rcptOutcome{reason: ReasonAcceptAll, step: "catch_all_cached"}
					}
					continue
				}
				reqs[i].wantCatchAll = false
			}
		}
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return res
	}
	var last *connFailure
	var answered *connFailure // an exchanger answered, but only to refuse us for now
	for _, host := range mxs {
		if ctx.Err() != nil {
			break
		}
		st, f := p.acquire(ctx, host)
		if f != nil {
			last = f
			if f.code > 0 {
				answered = f
			}
			continue
		}
		healthy := p.session(ctx, st, host, reqs, todo, res)
		p.release(host, st, healthy)
		return res
	}
	for _, i := range todo {
		for j := range res[i].rcpts {
			switch {
			case answered != nil:
				res[i].rcpts[j] = rcptOutcome{reason: ReasonUnverified, code: answered.code, text: sanitizeText(answered.text), step: answered.step}
			case last != nil && errors.Is(last.err, context.Canceled):
				res[i].rcpts[j] = rcptOutcome{reason: ReasonUnverified, step: last.step, neterr: "canceled"}
			default:
				ne := "unreachable"
				if last != nil {
					ne = last.step + ":" + netErrClass(last.err)
				}
				res[i].rcpts[j] = rcptOutcome{reason: ReasonFailedExchange, step: "connect", neterr: ne}
			}
		}
	}
	return res
}

// connect dials the host (its addresses in order), reads the greeting and
// says EHLO (HELO when EHLO is refused).
func (p *prober) connect(ctx context.Context, host string) (*smtpStep, *connFailure) {
	o := p.e.opt
	addrs, derr := p.e.dns.host(ctx, host)
	if len(addrs) == 0 {
		return nil, &connFailure{step: "resolve", err: fmt.Errorf("no address for exchanger: %s", derr)}
	}
	port := o.SMTPPort
	if pp, ok := o.HostPorts[host]; ok {
		port = pp
	}
	var c net.Conn
	var err error
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
		c, err = o.Dial(dctx, "tcp", net.JoinHostPort(a, strconv.Itoa(port)))
		cancel()
		if err == nil {
			break
		}
	}
	if c == nil {
		return nil, &connFailure{step: "connect", err: err}
	}
	st := &smtpStep{conn: c, tp: textproto.NewConn(c), timeout: o.StepTimeout}
	st.bind(ctx)
	code, text, err := st.doWithin("", o.ConnectTimeout)
	if err != nil || code != 220 {
		st.unbind()
		_ = c.Close()
		return nil, &connFailure{step: "greeting", code: code, text: text, err: err}
	}
	code, text, err = st.do("EHLO " + o.HELO)
	if err == nil && code >= 500 {
		code, text, err = st.do("HELO " + o.HELO)
	}
	if err != nil || code != 250 {
		st.unbind()
		_ = c.Close()
		return nil, &connFailure{step: "helo", code: code, text: text, err: err}
	}
	return st, nil
}

// session runs the transaction(s) for the todo requests on st and reports
// whether the session is still healthy (reusable).
func (p *prober) session(ctx context.Context, st *smtpStep, host string, reqs []domainReq, todo []int, res []domainRes) bool {
	o := p.e.opt
	fail := func(from int, r Reason, step string, code int, text string, err error) {
		// every recipient from todo position `from` on that has no outcome yet
		for _, i := range todo[from:] {
			for j := range res[i].rcpts {
				if res[i].rcpts[j].reason == "" {
					res[i].rcpts[j] = rcptOutcome{reason: r, step: step, code: code, text: sanitizeText(text), neterr: netErrClass(err), mxHost: host}
				}
			}
		}
	}
	mail := func() (int, string, error) { return st.do("MAIL FROM:<" + o.MailFrom + ">") }
	code, text, err := mail()
	if st.reused && (err != nil || code == 421) {
		// an idle session the server has dropped (or is dropping with 421): one fresh connection
		_ = st.conn.Close()
		st.unbind()
		nst, f := p.connect(ctx, host)
		if f != nil {
			fail(0, ReasonUnverified, f.step, f.code, f.text, f.err)
			return false
		}
		p.e.smtpCon.Add(1)
		*st = *nst
		code, text, err = mail()
	}
	if err != nil || code != 250 {
		fail(0, ReasonUnverified, "mail", code, text, err)
		return err == nil && code != 421
	}
	inTx := 0
	rcpt := func(addr string) (int, string, error, bool) {
		if inTx >= o.RcptPerTransaction {
			code, text, err := st.do("RSET")
			if err != nil || code != 250 {
				return code, text, err, false
			}
			if code, text, err := mail(); err != nil || code != 250 {
				return code, text, err, false
			}
			inTx = 0
		}
		code, text, err := st.do("RCPT TO:<" + addr + ">")
		inTx++
		return code, text, err, err == nil
	}
	for k, i := range todo {
		r := reqs[i]
		if r.wantCatchAll {
			code, text, err, ok := rcpt(randomLocal() + "@" + r.domain)
			if !ok {
				fail(k, ReasonUnverified, "rcpt", code, text, err)
				return false
			}
			switch {
			case code >= 200 && code < 300:
				v := true
				res[i].catchAll = &v
				p.storeCatchAll(r.domain, true)
				for j := range r.locals {
					res[i].rcpts[j] = rcptOutcome{reason: ReasonAcceptAll, step: "catch_all", code: code, text: sanitizeText(text), mxHost: host}
				}
				continue
			case code >= 500:
				v := false
				res[i].catchAll = &v
				p.storeCatchAll(r.domain, false)
			}
			// 4xx: unknown and not cached; the recipients tell their own story
		}
		for j, l := range r.locals {
			addr := l + "@" + r.domain
			code, text, err, ok := rcpt(addr)
			if !ok {
				fail(k, ReasonUnverified, "rcpt", code, text, err)
				return false
			}
			res[i].rcpts[j] = rcptOutcome{reason: ClassifyRCPT(code, text), code: code, text: sanitizeText(text, addr, l), step: "rcpt", mxHost: host}
		}
	}
	code, _, err = st.do("RSET")
	return err == nil && code == 250
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}
