// Package match finds many keywords in short strings at once: an
// Aho-Corasick automaton compiled to a dense DFA over a compressed alphabet, so
// a lookup is one pass over the input whatever the number of keywords.
// Matching is ASCII case-insensitive; inputs with non-ASCII letters are
// lower-cased with strings.ToLower first.
package match

import (
	"strings"
	"unicode/utf8"
)

// Matcher is an immutable, concurrency-safe multi-keyword matcher.
type Matcher struct {
	classes  [256]uint8 // byte → alphabet class (0 = byte in no keyword)
	nclass   int
	delta    []int32   // state*nclass + class → next state
	terminal []bool    // some keyword ends at this state (own or via fail links)
	out      [][]int32 // keyword indexes ending at this state (own + fail links)
	lens     []int     // keyword lengths
	n        int
}

// New compiles the keywords (lower-cased; empty ones are ignored). Keyword i
// keeps index i in FindAll callbacks.
func New(keywords []string) *Matcher {
	m := &Matcher{lens: make([]int, len(keywords)), n: len(keywords)}
	lower := make([]string, len(keywords))
	for i, k := range keywords {
		lower[i] = strings.ToLower(k)
		m.lens[i] = len(lower[i])
		for j := 0; j < len(lower[i]); j++ {
			b := lower[i][j]
			if m.classes[b] == 0 {
				m.nclass++
				if m.nclass > 254 {
					m.nclass = 254
				}
				m.classes[b] = uint8(m.nclass)
			}
		}
	}
	// Upper-case ASCII letters share the class of their lower-case letter.
	for b := 'A'; b <= 'Z'; b++ {
		m.classes[b] = m.classes[b+32]
	}
	nc := m.nclass + 1
	// trie
	goto_ := [][]int32{make([]int32, nc)}
	for i := range goto_[0] {
		goto_[0][i] = -1
	}
	outs := [][]int32{nil}
	for i, k := range lower {
		if k == "" {
			continue
		}
		s := int32(0)
		for j := 0; j < len(k); j++ {
			c := m.classes[k[j]]
			if goto_[s][c] < 0 {
				row := make([]int32, nc)
				for x := range row {
					row[x] = -1
				}
				goto_ = append(goto_, row)
				outs = append(outs, nil)
				goto_[s][c] = int32(len(goto_) - 1)
			}
			s = goto_[s][c]
		}
		outs[s] = append(outs[s], int32(i))
	}
	ns := len(goto_)
	m.delta = make([]int32, ns*nc)
	m.terminal = make([]bool, ns)
	fail := make([]int32, ns)
	queue := make([]int32, 0, ns)
	for c := 0; c < nc; c++ {
		if t := goto_[0][c]; t >= 0 && c != 0 {
			m.delta[c] = t
			fail[t] = 0
			queue = append(queue, t)
		} else {
			m.delta[c] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		outs[s] = append(outs[s], outs[fail[s]]...)
		for c := 0; c < nc; c++ {
			t := goto_[s][c]
			if t >= 0 && c != 0 {
				fail[t] = m.delta[int(fail[s])*nc+c]
				m.delta[int(s)*nc+c] = t
				queue = append(queue, t)
			} else {
				m.delta[int(s)*nc+c] = m.delta[int(fail[s])*nc+c]
			}
		}
	}
	for s := range outs {
		m.terminal[s] = len(outs[s]) > 0
	}
	m.out = outs
	return m
}

// Len is the number of keywords.
func (m *Matcher) Len() int { return m.n }

func prep(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return strings.ToLower(s)
		}
	}
	return s
}

// Contains reports whether any keyword occurs in s.
func (m *Matcher) Contains(s string) bool {
	if m == nil || m.n == 0 {
		return false
	}
	s = prep(s)
	nc := m.nclass + 1
	st := int32(0)
	for i := 0; i < len(s); i++ {
		st = m.delta[int(st)*nc+int(m.classes[s[i]])]
		if m.terminal[st] {
			return true
		}
	}
	return false
}

// FindAll calls fn for each occurrence (keyword index, start offset, end
// offset in the lower-cased s) until fn returns false.
func (m *Matcher) FindAll(s string, fn func(kw, start, end int) bool) {
	if m == nil || m.n == 0 {
		return
	}
	s = prep(s)
	nc := m.nclass + 1
	st := int32(0)
	for i := 0; i < len(s); i++ {
		st = m.delta[int(st)*nc+int(m.classes[s[i]])]
		if m.terminal[st] {
			for _, k := range m.out[st] {
				if !fn(int(k), i+1-m.lens[k], i+1) {
					return
				}
			}
		}
	}
}
