package verify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// smtpStep is one SMTP session of the prober. Commands are written straight
// from a reused buffer (one write per group when the server pipelines) and
// replies are parsed from a buffered reader without textproto's per-line
// allocations.
type smtpStep struct {
	conn       net.Conn
	r          *bufio.Reader
	wbuf       []byte
	ctx        context.Context
	rto        time.Duration // read timeout: a fresh one for each blocking read
	timeout    time.Duration
	stop       func() bool // detaches the context watcher
	reused     bool        // taken from the idle pool
	pipelining bool        // the server's EHLO advertised PIPELINING (RFC 2920)
	lastUsed   time.Time
}

func newSMTPStep(ctx context.Context, c net.Conn, timeout time.Duration) *smtpStep {
	st := &smtpStep{conn: c, timeout: timeout, rto: timeout, ctx: ctx, wbuf: make([]byte, 0, 512)}
	st.r = bufio.NewReaderSize(stepReader{st}, 4096)
	return st
}

// stepReader gives each blocking read of a session its own timeout and stops
// reading once the session's context is done.
type stepReader struct{ st *smtpStep }

func (r stepReader) Read(p []byte) (int, error) {
	st := r.st
	if st.ctx != nil {
		if err := st.ctx.Err(); err != nil {
			return 0, err
		}
	}
	_ = st.conn.SetReadDeadline(time.Now().Add(st.rto))
	return st.conn.Read(p)
}

// bind makes ctx cancellation abort the session's blocking I/O.
func (s *smtpStep) bind(ctx context.Context) {
	c := s.conn
	s.ctx = ctx
	s.stop = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	s.reused = !s.lastUsed.IsZero()
}

func (s *smtpStep) unbind() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
	s.ctx = nil
}

// quit says goodbye (bounded) and closes.
func (s *smtpStep) quit() {
	d := minDur(s.timeout, time.Second)
	s.ctx, s.rto = nil, d
	_ = s.conn.SetWriteDeadline(time.Now().Add(d))
	if _, err := s.conn.Write([]byte("QUIT\r\n")); err == nil {
		_, _, _ = s.readReply()
	}
	_ = s.conn.Close()
}

// queue appends one command line to the write buffer.
func (s *smtpStep) queue(parts ...string) {
	for _, p := range parts {
		s.wbuf = append(s.wbuf, p...)
	}
	s.wbuf = append(s.wbuf, '\r', '\n')
}

// send writes the queued commands in one write.
func (s *smtpStep) send() error {
	if len(s.wbuf) == 0 {
		return nil
	}
	if s.ctx != nil {
		if err := s.ctx.Err(); err != nil {
			s.wbuf = s.wbuf[:0]
			return err
		}
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
	_, err := s.conn.Write(s.wbuf)
	if cap(s.wbuf) > 64<<10 {
		s.wbuf = nil
	} else {
		s.wbuf = s.wbuf[:0]
	}
	return err
}

// do sends one command (or none for the greeting) and reads the reply within the step timeout.
func (s *smtpStep) do(cmd string) (int, string, error) {
	return s.doWithin(cmd, s.timeout)
}

func (s *smtpStep) doWithin(cmd string, timeout time.Duration) (int, string, error) {
	s.rto = timeout
	defer func() { s.rto = s.timeout }()
	if cmd != "" {
		s.queue(cmd)
		if err := s.send(); err != nil {
			return 0, "", err
		}
	}
	return s.readReply()
}

// readLine returns the next line without its line ending; the slice is valid
// until the next read.
func (s *smtpStep) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull { // a long line: collect it
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			line, err = s.r.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil {
		if len(line) > 0 && err == io.EOF { // a last line without ending, as bufio.Reader.ReadLine returns it
			return line, nil
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseCode reads "ddd" + ' ' or '-' as textproto does.
func parseCode(line []byte) (code int, continued, ok bool) {
	if len(line) < 4 || line[3] != ' ' && line[3] != '-' {
		return 0, false, false
	}
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return 0, false, false
	}
	return code, line[3] == '-', true
}

// readReply reads one (possibly multi-line) reply with the semantics of
// textproto.Reader.ReadResponse(0): the lines' texts joined by "\n".
func (s *smtpStep) readReply() (int, string, error) {
	code, text, err := s.readReplyRaw()
	return code, string(text), err
}

// readReplyRaw is readReply with the text as bytes, valid until the next read.
func (s *smtpStep) readReplyRaw() (int, []byte, error) {
	line, err := s.readLine()
	if err != nil {
		return 0, nil, err
	}
	code, continued, ok := parseCode(line)
	if !ok {
		if len(line) < 4 || line[3] != ' ' && line[3] != '-' {
			return 0, nil, textproto.ProtocolError(fmt.Sprintf("short response: %q", line))
		}
		return 0, nil, textproto.ProtocolError(fmt.Sprintf("invalid response code: %q", line))
	}
	if !continued {
		return code, line[4:], nil
	}
	var b bytes.Buffer
	b.Write(line[4:])
	for continued {
		line, err := s.readLine()
		if err != nil {
			return 0, nil, err
		}
		b.WriteByte('\n')
		code2, cont, ok := parseCode(line)
		if !ok || code2 != code {
			b.Write(bytes.TrimRight(line, "\r\n"))
			continue
		}
		continued = cont
		b.Write(line[4:])
	}
	return code, b.Bytes(), nil
}

// hasPipelining reports whether an EHLO reply advertises PIPELINING.
func hasPipelining(ehlo string) bool {
	for i, l := range strings.Split(ehlo, "\n") {
		if i == 0 {
			continue // the greeting line
		}
		if kw, _, _ := strings.Cut(strings.TrimSpace(l), " "); strings.EqualFold(kw, "PIPELINING") {
			return true
		}
	}
	return false
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

// sanitizeRcpt is sanitizeText(text, local+"@"+domain, local) without building
// the address or lower-cased copies when everything is ASCII (the usual case).
// The text may be the reply's bytes, read in place.
func sanitizeRcpt[T string | []byte](text T, local, domain string) string {
	if !isASCII(text) || !isASCII(local) || !isASCII(domain) {
		return sanitizeText(string(text), local+"@"+domain, local)
	}
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			return sanitizeRcpt(strings.ReplaceAll(string(text), "\n", " "), local, domain)
		}
	}
	if indexFoldASCII(text, [3]string{local}) < 0 { // nor, then, the address
		return string(text[:min(len(text), 200)])
	}
	var b1, b2 [256]byte
	first := replaceFoldASCII(b1[:0], text, [3]string{local, "@", domain})
	out := replaceFoldASCII(b2[:0], first, [3]string{local})
	return string(out[:min(len(out), 200)])
}

func isASCII[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// indexFoldASCII is the index of the first ASCII case-insensitive match of
// the concatenated parts in s, or -1.
func indexFoldASCII[T string | []byte](s T, parts [3]string) int {
	n := len(parts[0]) + len(parts[1]) + len(parts[2])
	if n == 0 {
		return 0
	}
	for i := 0; i+n <= len(s); i++ {
		k := i
		ok := true
		for _, p := range parts {
			for j := 0; j < len(p); j++ {
				if lowerASCII(s[k]) != lowerASCII(p[j]) {
					ok = false
					break
				}
				k++
			}
			if !ok {
				break
			}
		}
		if ok {
			return i
		}
	}
	return -1
}

// replaceFoldASCII appends s to dst with every (non-overlapping, left to
// right) case-insensitive match of the parts replaced by "<address>", as
// replaceFold does for ASCII text.
func replaceFoldASCII[T string | []byte](dst []byte, s T, parts [3]string) []byte {
	n := len(parts[0]) + len(parts[1]) + len(parts[2])
	for {
		i := indexFoldASCII(s, parts)
		if i < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:i]...)
		dst = append(dst, "<address>"...)
		s = s[i+n:]
	}
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
	if code >= 200 && code < 300 {
		return ReasonValid
	}
	t := strings.ToLower(text)
	quota := func() bool {
		return containsAny(t, "quota", "mailbox full", "mailbox is full", "full mailbox", "over the limit", "insufficient storage", "4.2.2", "5.2.2", "exceeded storage")
	}
	disabled := func() bool {
		return containsAny(t, "disabled", "inactive", "deactivated", "suspended", "not active", "no longer active", "account closed", "5.2.1", "4.2.1")
	}
	policy := func() bool {
		return containsAny(t, "spam", "block", "blacklist", "listed", "reputation", "policy", "denied", "relay", "5.7.", "rate limit", "too many")
	}
	switch { // the text's tests run only as far as the cases need them
	case code == 552, code >= 400 && quota():
		return ReasonInboxFull
	case code >= 500 && disabled():
		return ReasonDeactivated
	case code >= 400 && code < 500:
		return ReasonUnverified
	case policy():
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
	st := newSMTPStep(ctx, c, o.StepTimeout)
	st.bind(ctx)
	code, text, err := st.doWithin("", o.ConnectTimeout)
	if err != nil || code != 220 {
		st.unbind()
		_ = c.Close()
		return nil, &connFailure{step: "greeting", code: code, text: text, err: err}
	}
	code, text, err = st.do("EHLO " + o.HELO)
	if err == nil && code == 250 {
		st.pipelining = !p.e.opt.NoPipelining && hasPipelining(text)
	}
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
// whether the session is still healthy (reusable). A reused session the server
// has dropped meanwhile (the opening MAIL fails on the network or gets 421) is
// replaced by one fresh connection.
func (p *prober) session(ctx context.Context, st *smtpStep, host string, reqs []domainReq, todo []int, res []domainRes) bool {
	healthy, redo := p.transact(st, host, reqs, todo, res)
	if !redo {
		return healthy
	}
	_ = st.conn.Close()
	st.unbind()
	nst, f := p.connect(ctx, host)
	if f != nil {
		failFrom(res, todo, 0, host, ReasonUnverified, f.step, f.code, f.text, f.err)
		return false
	}
	p.e.smtpCon.Add(1)
	*st = *nst
	st.r = bufio.NewReaderSize(stepReader{st}, 4096) // the reader must read through st, not nst
	healthy, _ = p.transact(st, host, reqs, todo, res)
	return healthy
}

// failFrom gives every recipient from todo position from on that has no
// outcome yet the outcome r.
func failFrom(res []domainRes, todo []int, from int, host string, r Reason, step string, code int, text string, err error) {
	for _, i := range todo[from:] {
		for j := range res[i].rcpts {
			if res[i].rcpts[j].reason == "" {
				res[i].rcpts[j] = rcptOutcome{reason: r, step: step, code: code, text: sanitizeText(text), neterr: netErrClass(err), mxHost: host}
			}
		}
	}
}

// Commands of a session whose replies are awaited.
const (
	cmdMail      = iota // the opening MAIL FROM
	cmdTxRset           // RSET at a transaction boundary
	cmdTxMail           // MAIL FROM after it
	cmdCatchAll         // RCPT of a random local part
	cmdRcpt             // RCPT of a recipient
	cmdFinalRset        // RSET closing the session's work
)

// maxGroupBytes bounds a pipelined group of commands: it fits a socket's send
// buffer, so the write never waits for the server, which may be blocked
// writing replies nobody reads yet (RFC 2920 section 3.5).
const maxGroupBytes = 4096

type pendingCmd struct {
	kind uint8
	k    int // todo position
	j    int // local index (cmdRcpt)
}

// transact sends MAIL FROM, the RCPTs of the todo requests (RSET + MAIL FROM
// every RcptPerTransaction) and a final RSET. When the server pipelines, the
// commands go in groups (one write, then the replies in order); a group ends
// where the next command depends on a reply (a domain's catch-all probe
// decides whether its recipients are probed) or at maxGroupBytes. Otherwise
// each command waits for its reply. Replies are handled in command order
// either way, so the outcomes do not depend on the mode. redo reports a
// reused session the server had dropped before this transaction began.
func (p *prober) transact(st *smtpStep, host string, reqs []domainReq, todo []int, res []domainRes) (healthy, redo bool) {
	o := p.e.opt
	var pend []pendingCmd
	mailCmd := "MAIL FROM:<" + o.MailFrom + ">"
	done := false // a reply ended the session's work
	// handle processes the reply to c; it reports whether to go on.
	handle := func(c pendingCmd, code int, text string, err error) bool {
		switch c.kind {
		case cmdMail:
			if st.reused && (err != nil || code == 421) {
				redo = true
				return false
			}
			if err != nil || code != 250 {
				failFrom(res, todo, 0, host, ReasonUnverified, "mail", code, text, err)
				healthy = err == nil && code != 421
				return false
			}
		case cmdTxRset, cmdTxMail:
			if err != nil || code != 250 {
				failFrom(res, todo, c.k, host, ReasonUnverified, "rcpt", code, text, err)
				return false
			}
		case cmdCatchAll:
			if err != nil {
				failFrom(res, todo, c.k, host, ReasonUnverified, "rcpt", code, text, err)
				return false
			}
			i := todo[c.k]
			r := reqs[i]
			switch {
			case code >= 200 && code < 300:
				v := true
				res[i].catchAll = &v
				p.storeCatchAll(r.domain, true)
				for j := range r.locals {
					res[i].rcpts[j] = rcptOutcome{reason: ReasonAcceptAll, step: "catch_all", code: code, text: sanitizeText(text), mxHost: host}
				}
			case code >= 500:
				v := false
				res[i].catchAll = &v
				p.storeCatchAll(r.domain, false)
			}
			// 4xx: unknown and not cached; the recipients tell their own story
		case cmdRcpt: // (the replies' happy path is in flush)
			failFrom(res, todo, c.k, host, ReasonUnverified, "rcpt", code, text, err)
			return false
		case cmdFinalRset:
			healthy = err == nil && code == 250
		}
		return true
	}
	// flush sends the queued commands and handles their replies in order.
	flush := func() bool {
		if done {
			return false
		}
		werr := st.send()
		for n, c := range pend {
			code, raw, err := 0, []byte(nil), werr
			if werr == nil {
				code, raw, err = st.readReplyRaw()
			}
			if c.kind == cmdRcpt && err == nil { // the bulk of the replies: evidence straight from the read buffer
				r := reqs[todo[c.k]]
				reason := ReasonValid
				if code < 200 || code >= 300 {
					reason = ClassifyRCPT(code, string(raw))
				}
				res[todo[c.k]].rcpts[c.j] = rcptOutcome{reason: reason, code: code, text: sanitizeRcpt(raw, r.locals[c.j], r.domain), step: "rcpt", mxHost: host}
				continue
			}
			if !handle(c, code, string(raw), err) {
				done = true
				if healthy && err == nil { // the session goes back to the pool: read the replies still due
					for range pend[n+1:] {
						if _, _, err := st.readReply(); err != nil {
							healthy = false
							break
						}
					}
				}
				pend = pend[:0]
				return false
			}
		}
		pend = pend[:0]
		return true
	}
	add := func(c pendingCmd, parts ...string) bool {
		st.queue(parts...)
		pend = append(pend, c)
		if !st.pipelining || len(st.wbuf) >= maxGroupBytes {
			return flush()
		}
		return true
	}
	inTx := 0
	rcpt := func(c pendingCmd, local, domain string) bool {
		if inTx >= o.RcptPerTransaction {
			if !add(pendingCmd{kind: cmdTxRset, k: c.k}, "RSET") || !add(pendingCmd{kind: cmdTxMail, k: c.k}, mailCmd) {
				return false
			}
			inTx = 0
		}
		inTx++
		return add(c, "RCPT TO:<", local, "@", domain, ">")
	}
	if !add(pendingCmd{kind: cmdMail}, mailCmd) {
		return healthy, redo
	}
	for k, i := range todo {
		r := reqs[i]
		if r.wantCatchAll {
			if !rcpt(pendingCmd{kind: cmdCatchAll, k: k}, randomLocal(), r.domain) || !flush() {
				return healthy, redo
			}
			if res[i].catchAll != nil && *res[i].catchAll {
				continue
			}
		}
		for j, l := range r.locals {
			if !rcpt(pendingCmd{kind: cmdRcpt, k: k, j: j}, l, r.domain) {
				return healthy, redo
			}
		}
	}
	if !add(pendingCmd{kind: cmdFinalRset}, "RSET") || !flush() {
		return healthy, redo
	}
	return healthy, redo
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}
