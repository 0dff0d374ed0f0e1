package verifytest_test

import (
	"context"
	"testing"
	"time"

	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

func newWorldEngine(t testing.TB, tweak ...func(*verify.Options)) (*verifytest.World, *verify.Engine) {
	t.Helper()
	w, err := verifytest.NewWorld(verifytest.WorldOptions{SlowDelay: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	o, err := w.EngineOptions()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tweak {
		f(&o)
	}
	e, err := verify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return w, e
}

func TestCorpusClassifiedExactly(t *testing.T) {
	for _, tc := range []struct {
		name         string
		noPipelining bool
	}{
		{"pipelined", false}, // the world's servers advertise PIPELINING
		{"lock-step", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			corpusClassifiedExactly(t, func(o *verify.Options) { o.NoPipelining = tc.noPipelining })
		})
	}
}

func corpusClassifiedExactly(t *testing.T, tweak func(*verify.Options)) {
	w, e := newWorldEngine(t, tweak)
	corpus := verifytest.Corpus(2100)
	ins := make([]verify.Input, len(corpus))
	for i, c := range corpus {
		ins[i] = c.Input
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := e.VerifyBatch(ctx, ins, verify.AllChecks)
	wrong := 0
	for i, r := range res {
		if r.Reason != corpus[i].Want {
			wrong++
			if wrong <= 20 {
				t.Errorf("%s %q: got %s want %s (evidence %+v)", corpus[i].Kind, corpus[i].Input.Email, r.Reason, corpus[i].Want, r.Evidence)
			}
		}
		if r.Status != r.Reason.Status() {
			t.Errorf("status %s for reason %s", r.Status, r.Reason)
		}
	}
	t.Logf("corpus: %d addresses, %d wrong; dns queries %d; smtp conns mailbox=%d catchall=%d grey=%d",
		len(corpus), wrong, w.DNSQueries(), w.SMTPConnections("mailbox"), w.SMTPConnections("catchall"), w.SMTPConnections("grey"))
	if wrong != 0 {
		t.Fatalf("%d of %d misclassified", wrong, len(corpus))
	}
}
