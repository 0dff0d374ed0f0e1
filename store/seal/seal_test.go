package seal_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/autofloss/autofloss/store/seal"
)

func ring(t *testing.T, active string, ids ...string) (*seal.KeyRing, map[string][]byte) {
	t.Helper()
	raw := map[string][]byte{}
	var keys []seal.Key
	for _, id := range ids {
		k, err := seal.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		raw[id] = k
		keys = append(keys, seal.Key{ID: id, Key: k})
	}
	r, err := seal.NewKeyRing(keys, active)
	if err != nil {
		t.Fatal(err)
	}
	return r, raw
}

func TestSealOpen(t *testing.T) {
	r, _ := ring(t, "", "a", "b")
	if r.ActiveID() != "b" {
		t.Fatalf("active %q, want the last key", r.ActiveID())
	}
	plain := []byte(`{"api_key":"pk_live_123"}`)
	id, ct, err := r.Seal(plain, []byte("cnx_1"))
	if err != nil || id != "b" {
		t.Fatal(id, err)
	}
	if bytes.Contains(ct, plain) || bytes.Contains(ct, []byte("pk_live_123")) {
		t.Fatal("plaintext visible in ciphertext")
	}
	_, ct2, _ := r.Seal(plain, []byte("cnx_1"))
	if bytes.Equal(ct, ct2) {
		t.Fatal("two seals of one plaintext are equal (nonce reuse)")
	}
	cases := []struct {
		name  string
		keyID string
		ct    func() []byte
		ad    string
		want  error
	}{
		{"round trip", "b", func() []byte { return ct }, "cnx_1", nil},
		{"wrong associated data", "b", func() []byte { return ct }, "cnx_2", seal.ErrOpen},
		{"wrong key id", "a", func() []byte { return ct }, "cnx_1", seal.ErrOpen},
		{"unknown key id", "zz", func() []byte { return ct }, "cnx_1", seal.ErrUnknownKey},
		{"flipped byte", "b", func() []byte { c := bytes.Clone(ct); c[len(c)-1] ^= 1; return c }, "cnx_1", seal.ErrOpen},
		{"truncated", "b", func() []byte { return ct[:10] }, "cnx_1", seal.ErrOpen},
		{"empty", "b", func() []byte { return nil }, "cnx_1", seal.ErrOpen},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Open(tc.keyID, tc.ct(), []byte(tc.ad))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.want == nil && !bytes.Equal(got, plain) {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestNewKeyRingRejects(t *testing.T) {
	k, _ := seal.NewKey()
	cases := map[string]struct {
		keys   []seal.Key
		active string
	}{
		"empty":          {nil, ""},
		"short key":      {[]seal.Key{{ID: "a", Key: k[:16]}}, ""},
		"no id":          {[]seal.Key{{ID: "", Key: k}}, ""},
		"duplicate":      {[]seal.Key{{ID: "a", Key: k}, {ID: "a", Key: k}}, ""},
		"unknown active": {[]seal.Key{{ID: "a", Key: k}}, "b"},
	}
	for name, tc := range cases {
		if _, err := seal.NewKeyRing(tc.keys, tc.active); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "secret.key")
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	created := make([]bool, 8)
	for i := range keys {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var err error
			keys[i], created[i], err = seal.LoadOrCreateKeyFile(path)
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	n := 0
	for i := range keys {
		if created[i] {
			n++
		}
		if !bytes.Equal(keys[i], keys[0]) || len(keys[i]) != seal.KeySize {
			t.Fatal("processes racing on the key file got different keys")
		}
	}
	if n != 1 {
		t.Fatalf("%d creators", n)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", fi.Mode(), err)
	}
	again, created2, err := seal.LoadOrCreateKeyFile(path)
	if err != nil || created2 || !bytes.Equal(again, keys[0]) {
		t.Fatal("reload changed the key")
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := seal.LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("garbage key file accepted")
	}
}
