package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/store"
)

// maxBulkRules is the most rules one bulk request may add (api.md).
const maxBulkRules = 1000

type ruleInput struct {
	Keyword *string `json:"keyword"`
	MatchOn *string `json:"match_on"`
}

// parseRule decodes and validates one rule object; errors name the field with prefix ("" or "rules[3].").
func parseRule(raw []byte, prefix string) (store.NewRule, error) {
	var in ruleInput
	if err := decodeStrict(raw, &in, prefix); err != nil {
		return store.NewRule{}, err
	}
	if in.Keyword == nil {
		return store.NewRule{}, invalid("invalid_field", prefix+"keyword", prefix+"keyword is required")
	}
	m := ""
	if in.MatchOn != nil {
		m = *in.MatchOn
	}
	rule, err := policy.ValidateRule(*in.Keyword, m)
	if err != nil {
		field, msg, _ := strings.Cut(err.Error(), ": ")
		return store.NewRule{}, invalid("invalid_field", prefix+field, prefix+field+": "+msg)
	}
	return store.NewRule{Keyword: rule.Keyword, MatchOn: string(rule.MatchOn)}, nil
}

// GET …/{whitelist|blacklist}
func (s *server) listRules(list string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, _, err := s.connection(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		pg, err := pageParams(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		rules, next, err := s.st.ListRules(r.Context(), c.AccountID, c.ID, list, pg)
		if err != nil {
			s.fail(w, r, cursorError(err))
			return
		}
		out := make([]ruleJSON, 0, len(rules))
		for _, x := range rules {
			out = append(out, renderRule(x))
		}
		writeJSON(w, http.StatusOK, newPage(out, next))
	}
}

// POST …/{whitelist|blacklist}: 201 with the new rule, or 200 with the existing equal one (same keyword
// case-insensitively and same match_on).
func (s *server) addRule(list string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r.Context())
		c, _, err := s.connection(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if _, err := checkBody(st.body, true); err != nil {
			s.fail(w, r, err)
			return
		}
		nr, err := parseRule(st.body, "")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		nr.List = list
		rule, created, err := s.st.AddRule(r.Context(), c.AccountID, c.ID, nr)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = errConnectionNotFound
			}
			s.fail(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, renderRule(rule))
	}
}

// POST …/{whitelist|blacklist}/bulk: 1–1,000 rules, all or nothing; 201 {"data":[rule…]} in request order
// (existing equal rules are returned as they are).
func (s *server) addRules(list string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r.Context())
		c, _, err := s.connection(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if _, err := checkBody(st.body, true); err != nil {
			s.fail(w, r, err)
			return
		}
		var in struct {
			Rules *[]json.RawMessage `json:"rules"`
		}
		if err := decodeStrict(st.body, &in, ""); err != nil {
			s.fail(w, r, err)
			return
		}
		if in.Rules == nil || len(*in.Rules) == 0 {
			s.fail(w, r, invalid("invalid_field", "rules", "rules must hold 1 to 1,000 rules"))
			return
		}
		if len(*in.Rules) > maxBulkRules {
			s.fail(w, r, invalid("too_many_rules", "rules", "rules holds "+strconv.Itoa(len(*in.Rules))+" rules; the most is 1,000 per request"))
			return
		}
		rules := make([]store.NewRule, 0, len(*in.Rules))
		for i, raw := range *in.Rules {
			prefix := "rules[" + strconv.Itoa(i) + "]."
			t := strings.TrimSpace(string(raw))
			if len(t) == 0 || t[0] != '{' {
				s.fail(w, r, invalid("invalid_field", strings.TrimSuffix(prefix, "."), strings.TrimSuffix(prefix, ".")+" must be an object"))
				return
			}
			nr, err := parseRule(raw, prefix)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			nr.List = list
			rules = append(rules, nr)
		}
		added, err := s.st.AddRules(r.Context(), c.AccountID, c.ID, rules)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = errConnectionNotFound
			}
			s.fail(w, r, err)
			return
		}
		out := make([]ruleJSON, 0, len(added))
		for _, x := range added {
			out = append(out, renderRule(x))
		}
		writeJSON(w, http.StatusCreated, struct {
			Data []ruleJSON `json:"data"`
		}{out})
	}
}

// DELETE …/{whitelist|blacklist}/{rule_id}: 204; a rule of the other list, another connection or nobody is 404.
func (s *server) deleteRule(list string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, _, err := s.connection(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		err = s.st.DeleteRule(r.Context(), c.AccountID, c.ID, list, r.PathValue("rule_id"))
		if errors.Is(err, store.ErrNotFound) {
			err = errRuleNotFound
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
