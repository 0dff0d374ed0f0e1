// Package verifytest runs a small "loopback world" for tests, benchmarks and
// the demo: a real DNS server (miekg/dns, UDP+TCP on 127.0.0.1) serving a test
// zone and real SMTP servers (emersion/go-smtp) that behave like the mail
// exchangers the verification engine meets in the wild, plus a labelled
// corpus of addresses over that world.
package verifytest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/autofloss/autofloss/verify"
)

// Domains of the test zone and what they do.
const (
	DomainGood       = "good.test"      // MX mx.good.test: the mailbox server (see Mailbox* prefixes)
	DomainCatchAll   = "catchall.test"  // MX mx.catchall.test: accepts every recipient
	DomainGrey       = "grey.test"      // MX mx.grey.test: 451 greylisting on every RCPT
	DomainHang       = "hang.test"      // MX mx.hang.test: accepts TCP, never greets
	DomainRefused    = "refused.test"   // MX mx.refused.test: connection refused
	DomainBackup     = "backup.test"    // MX 10 mx1.backup.test (refused), MX 20 mx2.backup.test (mailbox server)
	DomainNullMX     = "nullmx.test"    // MX 0 . (RFC 7505)
	DomainNXDomain   = "nosuch.test"    // NXDOMAIN (as is any name not in the zone)
	DomainServfail   = "servfail.test"  // SERVFAIL
	DomainSlow       = "slow.test"      // answers after WorldOptions.SlowDelay
	DomainAOnly      = "aonly.test"     // no MX, A 127.0.0.1 (implicit MX: the mailbox server)
	DomainNoMail     = "nomail.test"    // exists (TXT), neither MX nor A
	DomainParked     = "parked.test"    // NS ns1.sedoparking.com, A record, no MX
	DomainParkedMX   = "parkedmx.test"  // MX mx.parkingcrew.net
	DomainTrap       = "trap.test"      // a spam-trap domain (TrapLists adds it), MX mx.good.test
	DomainDisposable = "mailinator.com" // on the shipped disposable list (never resolved: lists stop first)
)

// BulkDomains is the number of bulk domains.
const BulkDomains = 200

// BulkDomain returns the i-th bulk domain (b000.test … b199.test): each has its
// own exchanger mx.bNNN.test (so sessions are per domain), all served by the
// mailbox server.
func BulkDomain(i int) string { return fmt.Sprintf("b%03d.test", i%BulkDomains) }

// SharedDomain returns the i-th shared domain (s000.test … s199.test): all of
// them use the one exchanger mx.good.test, like the domains of a hosted mail
// provider, so their recipients share sessions.
func SharedDomain(i int) string { return fmt.Sprintf("s%03d.test", i%BulkDomains) }

// Local-part prefixes understood by the mailbox server (mx.good.test,
// mx2.backup.test, aonly.test). Anything else is an unknown user.
const (
	MailboxOK       = "ok."     // 250
	MailboxFull     = "full."   // 552 5.2.2 mailbox full
	MailboxQuota452 = "quota."  // 452 4.2.2 over quota
	MailboxDisabled = "off."    // 550 5.2.1 mailbox disabled
	MailboxUnknown  = "nobody." // 550 5.1.1 user unknown
)

// WorldOptions tune the world.
type WorldOptions struct {
	SlowDelay time.Duration // delay of slow.test answers; default 2s (use a DNS timeout well below it)
	// ServerIdleTimeout is how long the SMTP servers wait for a command before
	// dropping the session; default 10s.
	ServerIdleTimeout time.Duration
}

// World is a running loopback world. Close it when done.
type World struct {
	DNSAddr   string         // 127.0.0.1:port (UDP and TCP)
	HostPorts map[string]int // MX host → SMTP port on 127.0.0.1, for verify.Options.HostPorts

	opt        WorldOptions
	dnsUDP     *dns.Server
	dnsTCP     *dns.Server
	smtps      []*smtp.Server
	hangLn     net.Listener
	hangMu     sync.Mutex
	hangConns  []net.Conn
	dnsQueries atomic.Int64
	conns      sync.Map // server name → *atomic.Int64
	maxActive  sync.Map // server name → *atomic.Int64
	resets     sync.Map // server name → *atomic.Int64
	closeOnce  sync.Once
}

var (
	bulkRe   = regexp.MustCompile(`^b[0-9]{3}\.test\.$`)
	bulkMXRe = regexp.MustCompile(`^mx\.b[0-9]{3}\.test\.$`)
	sharedRe = regexp.MustCompile(`^s[0-9]{3}\.test\.$`)
)

// NewWorld starts the DNS server and the SMTP servers.
func NewWorld(o WorldOptions) (*World, error) {
	if o.SlowDelay <= 0 {
		o.SlowDelay = 2 * time.Second
	}
	if o.ServerIdleTimeout <= 0 {
		o.ServerIdleTimeout = 10 * time.Second
	}
	w := &World{opt: o, HostPorts: map[string]int{}}
	ok := false
	defer func() {
		if !ok {
			w.Close()
		}
	}()
	mailbox, err := w.startSMTP("mailbox", mailboxRcpt)
	if err != nil {
		return nil, err
	}
	catchall, err := w.startSMTP("catchall", func(string) error { return nil })
	if err != nil {
		return nil, err
	}
	grey, err := w.startSMTP("grey", func(string) error { return errGreylisted })
	if err != nil {
		return nil, err
	}
	w.hangLn, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go w.hangLoop()
	refused, err := freePort()
	if err != nil {
		return nil, err
	}
	hang := w.hangLn.Addr().(*net.TCPAddr).Port
	w.HostPorts = map[string]int{
		"mx.good.test": mailbox, "mx.catchall.test": catchall, "mx.grey.test": grey,
		"mx.hang.test": hang, "mx.refused.test": refused, "mx1.backup.test": refused,
		"mx2.backup.test": mailbox, DomainAOnly: mailbox, DomainParked: mailbox,
	}
	for i := 0; i < BulkDomains; i++ {
		w.HostPorts["mx."+BulkDomain(i)] = mailbox
	}
	if err := w.startDNS(); err != nil {
		return nil, err
	}
	ok = true
	return w, nil
}

// Close stops every server. Safe to call twice.
func (w *World) Close() {
	w.closeOnce.Do(func() {
		if w.dnsUDP != nil {
			_ = w.dnsUDP.Shutdown()
		}
		if w.dnsTCP != nil {
			_ = w.dnsTCP.Shutdown()
		}
		for _, s := range w.smtps {
			_ = s.Close()
		}
		if w.hangLn != nil {
			_ = w.hangLn.Close()
		}
		w.hangMu.Lock()
		for _, c := range w.hangConns {
			_ = c.Close()
		}
		w.hangMu.Unlock()
	})
}

// DNSQueries is the number of DNS queries the world has answered.
func (w *World) DNSQueries() int64 { return w.dnsQueries.Load() }

// SMTPConnections is the number of SMTP sessions a server (mailbox, catchall,
// grey) has accepted.
func (w *World) SMTPConnections(server string) int64 {
	if v, ok := w.conns.Load(server); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// MaxConcurrentSessions is the highest number of simultaneous sessions a
// server has seen.
func (w *World) MaxConcurrentSessions(server string) int64 {
	if v, ok := w.maxActive.Load(server); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Resets is the number of transaction resets (RSET, and go-smtp's own resets
// after MAIL errors or at session start) a server has seen.
func (w *World) Resets(server string) int64 {
	if v, ok := w.resets.Load(server); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// EngineOptions returns engine options wired to this world: its DNS server and
// port map, short timeouts (DNS 1s — half the slow domain's delay, and enough
// for an in-process DNS server on a loaded 2-core machine running the race
// detector; SMTP steps 1s) and lists including the world's trap domain.
func (w *World) EngineOptions() (verify.Options, error) {
	l, err := TrapLists()
	if err != nil {
		return verify.Options{}, err
	}
	return verify.Options{
		DNSServers:  []string{w.DNSAddr},
		DNSTimeout:  time.Second,
		StepTimeout: time.Second,
		HostPorts:   w.HostPorts,
		HELO:        "verifier.test",
		MailFrom:    "probe@verifier.test",
		Lists:       l,
	}, nil
}

// TrapLists returns the embedded lists plus the world's trap domain.
func TrapLists() (*verify.Lists, error) {
	l, err := verify.EmbeddedLists()
	if err != nil {
		return nil, err
	}
	return l.With(verify.ListSpamTrap, DomainTrap)
}

// listenUDPAndTCP binds one loopback port for both UDP and TCP (DNS answers on both). The UDP port is
// chosen by the kernel; its TCP twin may be taken by someone else on a busy machine, so it tries again.
func listenUDPAndTCP() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return pc, ln, nil
		}
		_ = pc.Close()
		lastErr = err
	}
	return nil, nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	p := l.Addr().(*net.TCPAddr).Port
	return p, l.Close()
}

func (w *World) hangLoop() {
	for {
		c, err := w.hangLn.Accept()
		if err != nil {
			return
		}
		w.hangMu.Lock()
		w.hangConns = append(w.hangConns, c)
		w.hangMu.Unlock()
	}
}

// The mailbox server's refusals (shared: go-smtp only reads them).
var (
	errMailboxFull     = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"}
	errMailboxQuota    = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox over quota"}
	errMailboxDisabled = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 2, 1}, Message: "Mailbox disabled, not accepting messages"}
	errMailboxUnknown  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	errGreylisted      = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, please try again later"}
)

// mailboxRcpt is the mailbox server's RCPT policy, by local-part prefix.
func mailboxRcpt(to string) error {
	local := to
	if i := strings.LastIndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	switch {
	case hasPrefixFold(local, MailboxOK):
		return nil
	case hasPrefixFold(local, MailboxFull):
		return errMailboxFull
	case hasPrefixFold(local, MailboxQuota452):
		return errMailboxQuota
	case hasPrefixFold(local, MailboxDisabled):
		return errMailboxDisabled
	}
	return errMailboxUnknown
}

// hasPrefixFold is strings.HasPrefix(strings.ToLower(s), prefix) for a
// lower-case ASCII prefix, without the copy when s starts in ASCII.
func hasPrefixFold(s, prefix string) bool {
	for i := 0; i < len(prefix); i++ {
		if i >= len(s) {
			return false
		}
		c := s[i]
		if c >= 0x80 {
			return strings.HasPrefix(strings.ToLower(s), prefix)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

type backend struct {
	name   string
	rcpt   func(to string) error
	count  *atomic.Int64
	active atomic.Int64
	max    *atomic.Int64
	rsets  *atomic.Int64
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) {
	b.count.Add(1)
	n := b.active.Add(1)
	for {
		m := b.max.Load()
		if n <= m || b.max.CompareAndSwap(m, n) {
			break
		}
	}
	return &session{b: b}, nil
}

type session struct{ b *backend }

func (s *session) Reset() { s.b.rsets.Add(1) }
func (s *session) Logout() error {
	s.b.active.Add(-1)
	return nil
}
func (s *session) Mail(string, *smtp.MailOptions) error {
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error { return s.b.rcpt(to) }
func (s *session) Data(r io.Reader) error {
	_, _ = io.Copy(io.Discard, r)
	return nil
}

func (w *World) startSMTP(name string, rcpt func(string) error) (int, error) {
	cnt, mx, rs := &atomic.Int64{}, &atomic.Int64{}, &atomic.Int64{}
	w.conns.Store(name, cnt)
	w.maxActive.Store(name, mx)
	w.resets.Store(name, rs)
	s := smtp.NewServer(&backend{name: name, rcpt: rcpt, count: cnt, max: mx, rsets: rs})
	s.Domain = "mx." + name + ".test"
	// timeouts: ServerIdleTimeout for the client's commands, 10s per write (replyBufListener applies them)
	s.MaxRecipients = 1000
	s.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	w.smtps = append(w.smtps, s)
	go func() {
		_ = s.Serve(replyBufListener{Listener: l, idle: w.opt.ServerIdleTimeout, write: 10 * time.Second})
	}()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ---- DNS ----

func (w *World) startDNS() error {
	pc, ln, err := listenUDPAndTCP()
	if err != nil {
		return err
	}
	h := dns.HandlerFunc(w.serveDNS)
	w.dnsUDP = &dns.Server{PacketConn: pc, Handler: h}
	w.dnsTCP = &dns.Server{Listener: ln, Handler: h}
	started := make(chan error, 2)
	w.dnsUDP.NotifyStartedFunc = func() { started <- nil }
	w.dnsTCP.NotifyStartedFunc = func() { started <- nil }
	go func() {
		if err := w.dnsUDP.ActivateAndServe(); err != nil {
			started <- err
		}
	}()
	go func() {
		if err := w.dnsTCP.ActivateAndServe(); err != nil {
			started <- err
		}
	}()
	for i := 0; i < 2; i++ {
		select {
		case err := <-started:
			if err != nil {
				return err
			}
		case <-time.After(5 * time.Second):
			return errors.New("dns server did not start")
		}
	}
	w.DNSAddr = ln.Addr().String()
	return nil
}

type zoneEntry struct {
	mx  []*dns.MX
	a   bool
	ns  []string
	txt bool
}

var localhost = net.IPv4(127, 0, 0, 1)

func mx(pref uint16, host string) *dns.MX {
	return &dns.MX{Preference: pref, Mx: dns.Fqdn(host)}
}

var zone = map[string]zoneEntry{
	DomainGood + ".":      {mx: []*dns.MX{mx(10, "mx.good.test")}},
	DomainCatchAll + ".":  {mx: []*dns.MX{mx(10, "mx.catchall.test")}},
	DomainGrey + ".":      {mx: []*dns.MX{mx(10, "mx.grey.test")}},
	DomainHang + ".":      {mx: []*dns.MX{mx(10, "mx.hang.test")}},
	DomainRefused + ".":   {mx: []*dns.MX{mx(10, "mx.refused.test")}},
	DomainBackup + ".":    {mx: []*dns.MX{mx(20, "mx2.backup.test"), mx(10, "mx1.backup.test")}},
	DomainNullMX + ".":    {mx: []*dns.MX{{Preference: 0, Mx: "."}}},
	DomainAOnly + ".":     {a: true},
	DomainNoMail + ".":    {txt: true},
	DomainParked + ".":    {a: true, ns: []string{"ns1.sedoparking.com.", "ns2.sedoparking.com."}},
	DomainParkedMX + ".":  {mx: []*dns.MX{mx(10, "mx.parkingcrew.net")}},
	DomainTrap + ".":      {mx: []*dns.MX{mx(10, "mx.good.test")}},
	"mx.good.test.":       {a: true},
	"mx.catchall.test.":   {a: true},
	"mx.grey.test.":       {a: true},
	"mx.hang.test.":       {a: true},
	"mx.refused.test.":    {a: true},
	"mx1.backup.test.":    {a: true},
	"mx2.backup.test.":    {a: true},
	"mx.parkingcrew.net.": {a: true},
}

func (w *World) serveDNS(rw dns.ResponseWriter, req *dns.Msg) {
	w.dnsQueries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = rw.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 300}
	}
	switch name {
	case DomainServfail + ".":
		m.Rcode = dns.RcodeServerFailure
		_ = rw.WriteMsg(m)
		return
	case DomainSlow + ".":
		time.Sleep(w.opt.SlowDelay)
		m.Answer = append(m.Answer, &dns.MX{Hdr: hdr(dns.TypeMX), Preference: 10, Mx: "mx.good.test."})
		_ = rw.WriteMsg(m)
		return
	}
	e, ok := zone[name]
	switch {
	case ok:
	case bulkRe.MatchString(name):
		e, ok = zoneEntry{mx: []*dns.MX{mx(10, "mx."+strings.TrimSuffix(name, "."))}}, true
	case bulkMXRe.MatchString(name):
		e, ok = zoneEntry{a: true}, true
	case sharedRe.MatchString(name):
		e, ok = zoneEntry{mx: []*dns.MX{mx(10, "mx.good.test")}}, true
	}
	if !ok {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, soa())
		_ = rw.WriteMsg(m)
		return
	}
	switch q.Qtype {
	case dns.TypeMX:
		for _, r := range e.mx {
			rr := *r
			rr.Hdr = hdr(dns.TypeMX)
			m.Answer = append(m.Answer, &rr)
		}
	case dns.TypeA:
		if e.a {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: localhost})
		}
	case dns.TypeNS:
		for _, n := range e.ns {
			m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: n})
		}
		if len(e.ns) == 0 {
			m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: "ns.test."})
		}
	case dns.TypeTXT:
		if e.txt {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{"v=spf1 -all"}})
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, soa())
	}
	_ = rw.WriteMsg(m)
}

func soa() dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60}
}
