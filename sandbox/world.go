package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

// World is the sandbox's mail world: a verifytest.World (loopback DNS and SMTP servers) behind a small DNS
// front on loopback. The front answers the department subdomains of the seeded role addresses
// (dept<N>.<good domain>, see esptest/seeddata.go) with the world's catch-all exchanger — role mailboxes of
// a company that accepts everything, which is what they usually are — and forwards every other question to
// the world unchanged. The verification engine is pointed at the front only.
type World struct {
	*verifytest.World
	// Resolver is the front's address (127.0.0.1:port, UDP and TCP): the engine's only DNS server.
	Resolver string

	good   map[string]bool
	udp    *dns.Server
	tcp    *dns.Server
	client [2]*dns.Client // udp, tcp
}

// deptRe matches a role address's department subdomain.
var deptRe = regexp.MustCompile(`^dept[0-9]+\.(.+\.)$`)

// StartWorld starts the world and its DNS front.
func StartWorld() (*World, error) {
	vw, err := verifytest.NewWorld(verifytest.WorldOptions{})
	if err != nil {
		return nil, fmt.Errorf("sandbox: world: %w", err)
	}
	w := &World{World: vw, good: map[string]bool{}}
	for _, d := range GoodDomains() {
		w.good[d+"."] = true
	}
	w.client[0] = &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	w.client[1] = &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	if err := w.startFront(); err != nil {
		vw.Close()
		return nil, err
	}
	return w, nil
}

// Close stops the front and the world. Safe to call twice.
func (w *World) Close() {
	if w.udp != nil {
		_ = w.udp.Shutdown()
		w.udp = nil
	}
	if w.tcp != nil {
		_ = w.tcp.Shutdown()
		w.tcp = nil
	}
	w.World.Close()
}

// EngineOptions are verification engine options that only ever talk to this world: the front as the one
// DNS server, the world's SMTP port per exchanger, short loopback timeouts, the lists with the world's trap
// domain, and a dialer that refuses any address that is not loopback (so even a misrouted answer cannot
// reach the internet).
func (w *World) EngineOptions() (verify.Options, error) {
	o, err := w.World.EngineOptions()
	if err != nil {
		return verify.Options{}, err
	}
	o.DNSServers = []string{w.Resolver}
	o.HELO = "verify.sandbox.autofloss.localhost"
	o.MailFrom = "probe@verify.sandbox.autofloss.localhost"
	o.Dial = LoopbackDial
	return o, nil
}

// ErrNotLoopback is returned by LoopbackDial for any address outside 127.0.0.0/8 and ::1.
var ErrNotLoopback = errors.New("sandbox: refusing to dial a non-loopback address")

// LoopbackDial dials only loopback IP addresses (no names: nothing is resolved through the system).
func LoopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, ErrNotLoopback
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (w *World) startFront() error {
	var lastErr error
	for try := 0; try < 5; try++ { // UDP and TCP on one port: retry when the TCP port is taken
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			_ = pc.Close()
			lastErr = err
			continue
		}
		started := make(chan struct{}, 2)
		w.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(w.serve), NotifyStartedFunc: func() { started <- struct{}{} }}
		w.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(w.serve), NotifyStartedFunc: func() { started <- struct{}{} }}
		go func() { _ = w.udp.ActivateAndServe() }()
		go func() { _ = w.tcp.ActivateAndServe() }()
		for i := 0; i < 2; i++ {
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				return errors.New("sandbox: dns front did not start")
			}
		}
		w.Resolver = fmt.Sprintf("127.0.0.1:%d", port)
		return nil
	}
	return fmt.Errorf("sandbox: dns front: %w", lastErr)
}

// serve answers dept<N>.<good domain> itself and forwards everything else to the world.
func (w *World) serve(rw dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) == 1 {
		q := req.Question[0]
		if m := deptRe.FindStringSubmatch(strings.ToLower(q.Name)); m != nil && w.good[m[1]] {
			resp := new(dns.Msg)
			resp.SetReply(req)
			resp.Authoritative = true
			switch q.Qtype {
			case dns.TypeMX:
				resp.Answer = append(resp.Answer, &dns.MX{
					Hdr:        dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 300},
					Preference: 10, Mx: "mx.catchall.test.",
				})
			case dns.TypeNS:
				resp.Answer = append(resp.Answer, &dns.NS{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 300}, Ns: "ns.test.",
				})
			}
			_ = rw.WriteMsg(resp)
			return
		}
	}
	c := w.client[0]
	if _, ok := rw.LocalAddr().(*net.TCPAddr); ok {
		c = w.client[1]
	}
	resp, _, err := c.Exchange(req, w.World.DNSAddr)
	if err != nil {
		fail := new(dns.Msg)
		fail.SetRcode(req, dns.RcodeServerFailure)
		_ = rw.WriteMsg(fail)
		return
	}
	resp.Id = req.Id
	_ = rw.WriteMsg(resp)
}
