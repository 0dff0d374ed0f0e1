package verify_test

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

// TestPipelinedSameEvidenceAsLockStep checks that pipelining changes nothing a
// user can see: over the labelled corpus, every result's reason and SMTP
// evidence are those of lock-step probing.
func TestPipelinedSameEvidenceAsLockStep(t *testing.T) {
	w := world(t)
	corpus := verifytest.Corpus(700)
	ins := make([]verify.Input, len(corpus))
	for i, c := range corpus {
		ins[i] = c.Input
	}
	run := func(noPipelining bool) []verify.Result {
		e := engine(t, w, func(o *verify.Options) { o.NoPipelining = noPipelining })
		defer e.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return e.VerifyBatch(ctx, ins, verify.AllChecks)
	}
	piped, locked := run(false), run(true)
	for i := range ins {
		p, l := piped[i], locked[i]
		pe, le := p.Evidence, l.Evidence
		if pe.SMTPStep == "catch_all" { // the reply names the random probe address
			pe.SMTPText, le.SMTPText = "", ""
		}
		if p.Reason != l.Reason || pe.SMTPStep != le.SMTPStep || pe.SMTPCode != le.SMTPCode || pe.SMTPText != le.SMTPText ||
			pe.SMTPError != le.SMTPError || pe.MXHost != le.MXHost || (pe.CatchAll == nil) != (le.CatchAll == nil) ||
			pe.CatchAll != nil && *pe.CatchAll != *le.CatchAll {
			t.Errorf("%s: pipelined %s %+v, lock-step %s %+v", corpus[i].Kind, p.Reason, pe, l.Reason, le)
		}
	}
}

// rejectFirstMail is a go-smtp backend whose first MAIL FROM is refused
// (550 policy); every later one is accepted. RCPT: ok.* exist.
type rejectFirstMail struct {
	mails, conns atomic.Int64
}

func (b *rejectFirstMail) NewSession(*smtp.Conn) (smtp.Session, error) {
	b.conns.Add(1)
	return &rejectFirstMailSession{b}, nil
}

type rejectFirstMailSession struct{ b *rejectFirstMail }

func (s *rejectFirstMailSession) Reset()        {}
func (s *rejectFirstMailSession) Logout() error { return nil }
func (s *rejectFirstMailSession) Mail(string, *smtp.MailOptions) error {
	if s.b.mails.Add(1) == 1 {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender policy"}
	}
	return nil
}
func (s *rejectFirstMailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if len(to) > 3 && to[:3] == "ok." {
		return nil
	}
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
}
func (s *rejectFirstMailSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// TestRefusedMailKeepsSessionInStep refuses the opening MAIL FROM of a
// pipelined group: the recipients are unverified, the session stays healthy
// and is reused, and the next batch reads the replies of its own commands.
func TestRefusedMailKeepsSessionInStep(t *testing.T) {
	w := world(t)
	be := &rejectFirstMail{}
	srv := smtp.NewServer(be)
	srv.Domain = "mx.good.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name         string
		noPipelining bool
	}{{"pipelined", false}, {"lock-step", true}} {
		t.Run(tc.name, func(t *testing.T) {
			be.mails.Store(0)
			c0 := be.conns.Load()
			e := engine(t, w, func(o *verify.Options) {
				o.HostPorts = map[string]int{"mx.good.test": port}
				o.NoPipelining = tc.noPipelining
			})
			defer e.Close()
			ins := []verify.Input{{Email: "ok.a@" + verifytest.DomainGood}, {Email: "nobody.b@" + verifytest.DomainGood}, {Email: "ok.c@" + verifytest.DomainGood}}
			want := verify.ChecksOf(verify.ReasonNonexistent)
			for _, r := range e.VerifyBatch(context.Background(), ins, want) {
				if r.Reason != verify.ReasonUnverified || r.Evidence.SMTPStep != "mail" || r.Evidence.SMTPCode != 550 {
					t.Fatalf("refused MAIL: %s step %q code %d", r.Reason, r.Evidence.SMTPStep, r.Evidence.SMTPCode)
				}
			}
			for round := 0; round < 2; round++ {
				got := e.VerifyBatch(context.Background(), ins, want)
				for i, wantReason := range []verify.Reason{verify.ReasonValid, verify.ReasonNonexistent, verify.ReasonValid} {
					if got[i].Reason != wantReason || got[i].Evidence.SMTPStep != "rcpt" {
						t.Fatalf("round %d %d: %s step %q code %d text %q, want %s", round, i, got[i].Reason,
							got[i].Evidence.SMTPStep, got[i].Evidence.SMTPCode, got[i].Evidence.SMTPText, wantReason)
					}
				}
			}
			if n := be.conns.Load() - c0; n != 1 {
				t.Fatalf("%d sessions, want 1 (the session survives the refused MAIL)", n)
			}
		})
	}
}
