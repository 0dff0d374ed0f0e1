package match

import (
	"fmt"
	"strings"
	"testing"
)

func naive(kws []string, s string) bool {
	s = strings.ToLower(s)
	for _, k := range kws {
		if k != "" && strings.Contains(s, strings.ToLower(k)) {
			return true
		}
	}
	return false
}

func TestContains(t *testing.T) {
	kws := []string{"info", "SALES", "he", "she", "his", "hers", "ünï", "x"}
	m := New(kws)
	for _, s := range []string{"", "info", "xinfo", "inf", "ushers", "INFO@", "hi", "abc", "salesdept", "ÜNÏcode", "Y", "xx", "ab-x"} {
		if got, want := m.Contains(s), naive(kws, s); got != want {
			t.Errorf("Contains(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestFindAll(t *testing.T) {
	m := New([]string{"he", "she", "hers"})
	var got []string
	m.FindAll("ushers", func(k, a, b int) bool { got = append(got, fmt.Sprint(k, a, b)); return true })
	want := "[1 1 4 0 2 4 2 2 6]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestManyKeywordsAgreesWithNaive(t *testing.T) {
	var kws []string
	for i := 0; i < 1000; i++ {
		kws = append(kws, fmt.Sprintf("k%03dz", i*7%1000))
	}
	m := New(kws)
	for i := 0; i < 2000; i++ {
		s := fmt.Sprintf("ab%dk%03dzq", i, i%1300)
		if m.Contains(s) != naive(kws, s) {
			t.Fatalf("mismatch on %q", s)
		}
	}
}

func BenchmarkContains1000(b *testing.B) {
	var kws []string
	for i := 0; i < 1000; i++ {
		kws = append(kws, fmt.Sprintf("kw%dq", i))
	}
	m := New(kws)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Contains("jane.doe.marketing")
	}
}
