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

// probeResult is one domain session's outcome.
type probeResult struct {
	rcpts    []rcptOutcome
	catchAll *bool
	mxHost   string
	conns    int
}

type smtpStep struct {
	conn    net.Conn
	tp      *textproto.Conn
	timeout time.Duration
	stop    func() bool // detaches the context watcher
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

// prober runs SMTP sessions.
type prober struct {
	e *Engine

	semMu sync.Mutex
	sems  map[string]chan struct{}

	caMu     sync.Mutex
	catchAll map[string]catchAllEntry
}

type catchAllEntry struct {
	v       bool
	expires time.Time
}

func (p *prober) sem(host string) chan struct{} {
	p.semMu.Lock()
	defer p.semMu.Unlock()
	s, ok := p.sems[host]
	if !ok {
		s = make(chan struct{}, p.e.opt.PerHostConcurrency)
		p.sems[host] = s
	}
	return s
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

// probe checks locals at domain through its MX hosts in preference order, in
// one session (RSET every RcptPerTransaction recipients). wantCatchAll asks for
// a catch-all probe (cached per domain).
func (p *prober) probe(ctx context.Context, domain string, mxs []string, locals []string, wantCatchAll bool) probeResult {
	res := probeResult{rcpts: make([]rcptOutcome, len(locals))}
	if wantCatchAll {
		if v, ok := p.cachedCatchAll(domain); ok {
			vv := v
			res.catchAll = &vv
			if v {
				for i := range res.rcpts {
					res.rcpts[i] = rcptOutcome{reason: ReasonAcceptAll, step: "catch_all_cached"}
				}
				return res
			}
			wantCatchAll = false
		}
	}
	var lastConnErr string
	anyAnswer := false // some exchanger answered (even if only temporarily)
	var tempCode int
	var tempText string
	for _, host := range mxs {
		if ctx.Err() != nil {
			break
		}
		sem := p.sem(host)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		conn, step, code, text, err := p.connect(ctx, host)
		if conn == nil {
			<-sem
			if code > 0 {
				anyAnswer = true
				tempCode, tempText = code, text
			}
			lastConnErr = step + ":" + netErrClass(err)
			continue
		}
		res.conns++
		res.mxHost = host
		p.session(ctx, conn, host, domain, locals, wantCatchAll, &res)
		<-sem
		return res
	}
	for i := range res.rcpts {
		if anyAnswer {
			res.rcpts[i] = rcptOutcome{reason: ReasonUnverified, code: tempCode, text: sanitizeText(tempText), step: "greeting"}
		} else {
			res.rcpts[i] = rcptOutcome{reason: ReasonFailedExchange, step: "connect", neterr: lastConnErr}
		}
	}
	return res
}

// connect dials the host (its addresses in order) and reads the greeting and
// EHLO/HELO. On failure conn is nil; code/text are set when the server answered.
func (p *prober) connect(ctx context.Context, host string) (st *smtpStep, step string, code int, text string, err error) {
	o := p.e.opt
	addrs, derr := p.e.dns.host(ctx, host)
	if len(addrs) == 0 {
		return nil, "resolve", 0, "", fmt.Errorf("no address for exchanger: %s", derr)
	}
	port := o.SMTPPort
	if pp, ok := o.HostPorts[host]; ok {
		port = pp
	}
	var c net.Conn
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
		c, err = o.Dial(dctx, "tcp", net.JoinHostPort(a, strconv.Itoa(port)))
		cancel()
		if err == nil {
			break
		}
	}
	if c == nil {
		return nil, "connect", 0, "", err
	}
	st = &smtpStep{conn: c, tp: textproto.NewConn(c), timeout: o.StepTimeout}
	st.stop = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	code, text, err = st.doWithin("", o.ConnectTimeout)
	if err != nil || code != 220 {
		st.stop()
		_ = c.Close()
		return nil, "greeting", code, text, err
	}
	code, text, err = st.do("EHLO " + o.HELO)
	if err == nil && code >= 500 {
		code, text, err = st.do("HELO " + o.HELO)
	}
	if err != nil || code != 250 {
		st.stop()
		_ = c.Close()
		return nil, "helo", code, text, err
	}
	return st, "", 0, "", nil
}

func (p *prober) session(ctx context.Context, st *smtpStep, host, domain string, locals []string, wantCatchAll bool, res *probeResult) {
	o := p.e.opt
	defer func() {
		st.stop()
		_ = st.conn.SetDeadline(time.Now().Add(minDur(o.StepTimeout, time.Second)))
		_ = st.tp.PrintfLine("QUIT")
		_, _, _ = st.tp.ReadResponse(0)
		_ = st.conn.Close()
	}()
	fail := func(from int, r Reason, step string, code int, text string, err error) {
		for i := from; i < len(locals); i++ {
			res.rcpts[i] = rcptOutcome{reason: r, step: step, code: code, text: sanitizeText(text), neterr: netErrClass(err), mxHost: host}
		}
	}
	mail := func() (bool, int, string, error) {
		code, text, err := st.do("MAIL FROM:<" + o.MailFrom + ">")
		return err == nil && code == 250, code, text, err
	}
	ok, code, text, err := mail()
	if !ok {
		fail(0, ReasonUnverified, "mail", code, text, err)
		return
	}
	inTx := 0
	if wantCatchAll {
		code, text, err := st.do("RCPT TO:<" + randomLocal() + "@" + domain + ">")
		if err != nil {
			fail(0, ReasonUnverified, "rcpt", 0, "", err)
			return
		}
		inTx++
		switch {
		case code >= 200 && code < 300:
			v := true
			res.catchAll = &v
			p.storeCatchAll(domain, true)
			for i := range locals {
				res.rcpts[i] = rcptOutcome{reason: ReasonAcceptAll, step: "catch_all", code: code, text: sanitizeText(text), mxHost: host}
			}
			return
		case code >= 500:
			v := false
			res.catchAll = &v
			p.storeCatchAll(domain, false)
		}
		// 4xx: unknown, not cached; the recipients below tell their own story
	}
	for i, l := range locals {
		if inTx >= o.RcptPerTransaction {
			code, text, err := st.do("RSET")
			if err != nil || code != 250 {
				fail(i, ReasonUnverified, "rset", code, text, err)
				return
			}
			if ok, code, text, err := mail(); !ok {
				fail(i, ReasonUnverified, "mail", code, text, err)
				return
			}
			inTx = 0
		}
		addr := l + "@" + domain
		code, text, err := st.do("RCPT TO:<" + addr + ">")
		if err != nil {
			fail(i, ReasonUnverified, "rcpt", 0, "", err)
			return
		}
		inTx++
		res.rcpts[i] = rcptOutcome{reason: ClassifyRCPT(code, text), code: code, text: sanitizeText(text, addr, l), step: "rcpt", mxHost: host}
	}
	_, _, _ = st.do("RSET")
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}
