package esptest

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"gopkg.in/yaml.v3"
)

// The platforms' official OpenAPI documents (copied byte for byte from spec/openapi, licences beside them).
//
//go:embed openapi
var openapiFS embed.FS

// Validator checks requests and responses against one or more OpenAPI documents (OpenAPI 3.x, or Swagger
// 2.0 converted with openapi2conv). Operations the documents do not describe are not checked.
type Validator struct {
	routers []routers.Router
}

var (
	docMu    sync.Mutex
	docCache = map[string]*openapi3.T{}
)

// LoadValidator loads the named documents from the embedded openapi/ tree (e.g. "klaviyo/get_lists.json",
// "brevo/swagger.yaml"). Server URLs are dropped so any host (the fake's loopback address) matches.
func LoadValidator(names ...string) (*Validator, error) {
	v := &Validator{}
	for _, n := range names {
		doc, err := loadDoc(n)
		if err != nil {
			return nil, err
		}
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			return nil, fmt.Errorf("esptest: router for %s: %w", n, err)
		}
		v.routers = append(v.routers, r)
	}
	return v, nil
}

func loadDoc(name string) (*openapi3.T, error) {
	docMu.Lock()
	defer docMu.Unlock()
	if d := docCache[name]; d != nil {
		return d, nil
	}
	p := path.Join("openapi", name)
	data, err := openapiFS.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("esptest: %w", err)
	}
	var probe struct {
		Swagger string `yaml:"swagger" json:"swagger"`
	}
	_ = yaml.Unmarshal(data, &probe) // JSON is YAML
	var doc *openapi3.T
	if probe.Swagger != "" {
		var d2 openapi2.T
		j, err := yamlToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("esptest: %s: %w", name, err)
		}
		if err := d2.UnmarshalJSON(j); err != nil {
			return nil, fmt.Errorf("esptest: %s: %w", name, err)
		}
		if doc, err = openapi2conv.ToV3(&d2); err != nil {
			return nil, fmt.Errorf("esptest: convert %s: %w", name, err)
		}
	} else {
		loader := openapi3.NewLoader()
		loader.IsExternalRefsAllowed = true
		loader.ReadFromURIFunc = func(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
			return openapiFS.ReadFile(path.Clean(u.Path))
		}
		if doc, err = loader.LoadFromDataWithPath(data, &url.URL{Path: p}); err != nil {
			return nil, fmt.Errorf("esptest: load %s: %w", name, err)
		}
	}
	doc.Servers = nil
	for _, pi := range doc.Paths.Map() {
		pi.Servers = nil
		for _, op := range pi.Operations() {
			op.Servers = nil
		}
	}
	docCache[name] = doc
	return doc, nil
}

func yamlToJSON(data []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return json.Marshal(repairSwagger(stringKeys(v)))
}

// repairSwagger fixes, in memory only, a known defect of published Swagger 2.0 files: a response that is a
// bare $ref to #/definitions/… (Brevo's createBatchOrder) instead of a response object. It becomes a
// response with that schema. The files on disk stay byte-for-byte copies.
func repairSwagger(v any) any {
	root, _ := v.(map[string]any)
	paths, _ := root["paths"].(map[string]any)
	for _, pi := range paths {
		ops, _ := pi.(map[string]any)
		for _, op := range ops {
			o, _ := op.(map[string]any)
			resps, _ := o["responses"].(map[string]any)
			for code, r := range resps {
				m, _ := r.(map[string]any)
				if ref, _ := m["$ref"].(string); strings.HasPrefix(ref, "#/definitions/") {
					resps[code] = map[string]any{"description": "(repaired)", "schema": map[string]any{"$ref": ref}}
				}
			}
		}
	}
	return v
}

// stringKeys turns YAML's map[any]any (e.g. numeric response codes) into JSON-able maps.
func stringKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = stringKeys(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = stringKeys(e)
		}
		return x
	}
	return v
}

// Check validates one exchange and returns the violations (nil when fine or not described).
func (v *Validator) Check(r *http.Request, status int, h http.Header, body []byte) []string {
	var route *routers.Route
	var params map[string]string
	for _, rt := range v.routers {
		if x, p, err := rt.FindRoute(r); err == nil {
			route, params = x, p
			break
		}
	}
	if route == nil {
		return nil
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	var out []string
	op := r.Method + " " + r.URL.Path
	// The auth check and throttling happen before the platform looks at the request; only requests the
	// fake accepted are held to the request schema (a bad-credential probe is still a valid request).
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		out = append(out, fmt.Sprintf("request %s: %s", op, short(err)))
	}
	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: h,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: !anyEndpointStatus(status), MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, rin); err != nil {
		out = append(out, fmt.Sprintf("response %d %s: %s", status, op, short(err)))
	}
	return out
}

func short(err error) string {
	s := err.Error()
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return strings.ReplaceAll(s, "\n", " | ")
}

// anyEndpointStatus: statuses every endpoint of a platform can answer (bad credentials, throttling, server
// errors) that some documents do not list per operation — Brevo's Swagger lists them once, in its
// description. The fake core answers them before the platform's handlers run; they are validated when the
// operation documents them and otherwise accepted (any other undocumented status is still a violation).
func anyEndpointStatus(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests || status >= 500
}
