package http

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/mail"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// operationMethods are the keys of an OpenAPI path item that name operations.
var operationMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// openAPIDoc returns the served OpenAPI document, decoded.
func openAPIDoc(t testing.TB) map[string]any {
	t.Helper()
	b, err := openAPIJSON()
	require.NoError(t, err, "openapi.yaml must convert to JSON")
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	return doc
}

// chiParamRE matches a chi path parameter, with its optional regexp.
var chiParamRE = regexp.MustCompile(`\{([^}:]+)(:[^}]*)?\}`)

// routedOperations walks the router and returns "METHOD /path" for every
// route, with chi parameters written as OpenAPI templates.
func routedOperations(t *testing.T, s *Server) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := chi.Walk(s.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out[strings.ToUpper(method)+" "+chiParamRE.ReplaceAllString(route, "{$1}")] = true
		return nil
	})
	require.NoError(t, err)
	return out
}

// documentedOperations returns "METHOD /path" for every operation of doc.
func documentedOperations(doc map[string]any) map[string]bool {
	out := map[string]bool{}
	for path, item := range obj(doc["paths"]) {
		for _, m := range operationMethods {
			if _, ok := obj(item)[m]; ok {
				out[strings.ToUpper(m)+" "+path] = true
			}
		}
	}
	return out
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	// The realtime endpoint is mounted by cmd/tone through ExtraRoutes,
	// exactly so; a stand-in handler makes the router list it.
	a := newTestAPI(t, Config{ExtraRoutes: func(r chi.Router) {
		r.Get("/realtime", func(w http.ResponseWriter, r *http.Request) {})
	}}, testDomainConfig())
	routed := routedOperations(t, a.api)
	require.True(t, routed["GET /api/v1/realtime"], "ExtraRoutes are mounted under /api/v1: %v", routed)
	documented := documentedOperations(openAPIDoc(t))
	require.Greater(t, len(routed), 20, "the router walk found too few routes: %v", routed)

	var undocumented, unrouted []string
	for op := range routed {
		if !documented[op] {
			undocumented = append(undocumented, op)
		}
	}
	for op := range documented {
		if !routed[op] {
			unrouted = append(unrouted, op)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(unrouted)
	assert.Empty(t, undocumented, "routed in server.go but missing from openapi.yaml")
	assert.Empty(t, unrouted, "documented in openapi.yaml but not routed in server.go")
}

// TestOpenAPIDocument checks the served document: that it parses, is
// OpenAPI 3.1, and that every operation is complete and follows the API's
// conventions (statuses every operation of its kind can answer).
func TestOpenAPIDocument(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	resp := a.do("GET", "/api/v1/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, resp.Status)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(resp.Body, &doc), "openapi.json must be JSON")

	assert.Regexp(t, `^3\.1\.\d+$`, doc["openapi"])
	assert.NotEmpty(t, obj(doc["info"])["title"])
	assert.NotEmpty(t, obj(doc["info"])["version"])
	assert.Equal(t, []any{map[string]any{"url": "/"}}, doc["servers"])
	scheme := obj(obj(obj(doc["components"])["securitySchemes"])["bearerAuth"])
	assert.Equal(t, map[string]any{"type": "http", "scheme": "bearer"}, map[string]any{"type": scheme["type"], "scheme": scheme["scheme"]})
	assert.Equal(t, "JWT", scheme["bearerFormat"])

	v := &schemaValidator{doc: doc}
	t.Run("refs resolve", func(t *testing.T) {
		walkJSON(doc, func(node map[string]any) {
			if ref, ok := node["$ref"].(string); ok {
				_, err := v.lookup(ref)
				assert.NoError(t, err)
			}
		})
	})

	ops := 0
	opIDs := map[string]string{}
	for path, rawItem := range obj(doc["paths"]) {
		item := obj(rawItem)
		for _, method := range operationMethods {
			rawOp, ok := item[method]
			if !ok {
				continue
			}
			ops++
			op := obj(rawOp)
			name := strings.ToUpper(method) + " " + path
			t.Run(name, func(t *testing.T) {
				id, _ := op["operationId"].(string)
				if assert.NotEmpty(t, id, "operationId") {
					assert.Empty(t, opIDs[id], "operationId %q is also used by %s", id, opIDs[id])
					opIDs[id] = name
				}
				responses := obj(op["responses"])
				require.NotEmpty(t, responses, "responses")
				has := func(status string) bool { _, ok := responses[status]; return ok }

				params := map[string]map[string]any{} // "in:name" -> parameter
				for _, list := range []any{item["parameters"], op["parameters"]} {
					for _, p := range arr(list) {
						p := v.resolve(obj(p))
						params[fmt.Sprint(p["in"], ":", p["name"])] = p
					}
				}
				for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
					p, ok := params["path:"+m[1]]
					if assert.True(t, ok, "path parameter %s is not declared", m[1]) {
						assert.Equal(t, true, p["required"], "path parameter %s must be required", m[1])
						// Ids are UUIDs; names (environments, flag keys)
						// are strings with a pattern.
						if _, named := obj(p["schema"])["pattern"]; !named {
							assert.Equal(t, "uuid", obj(p["schema"])["format"], "path parameter %s", m[1])
						}
						assert.True(t, has("400"), "a malformed %s is 400", m[1])
						assert.True(t, has("404"), "a path id can be 404")
					}
				}
				if _, ok := params["header:X-Request-ID"]; !ok {
					t.Errorf("the X-Request-ID request header is not declared")
				}
				if _, ok := params["query:limit"]; ok {
					assert.Contains(t, params, "query:cursor", "lists take limit and cursor")
					assert.Equal(t, map[string]any{"type": "integer", "minimum": 1.0, "maximum": 200.0, "default": 50.0},
						obj(params["query:limit"]["schema"]))
					assert.True(t, has("400"), "bad limit or cursor is 400")
					list := v.resolve(obj(obj(obj(obj(v.resolve(obj(responses["200"]))["content"])["application/json"])["schema"])))
					assert.Equal(t, "array", obj(obj(list["properties"])["items"])["type"], "lists answer {items, next_cursor}")
					assert.Contains(t, obj(list["properties"]), "next_cursor")
				}

				secured := true
				if sec, ok := op["security"]; ok {
					secured = len(arr(sec)) > 0
				}
				if secured {
					assert.True(t, has("401"), "authenticated operations document 401")
				}
				if strings.HasPrefix(path, "/api/v1/") {
					assert.True(t, has("429"), "every /api/v1 request is rate limited")
				}
				if body, ok := op["requestBody"]; ok {
					for _, s := range []string{"400", "413"} {
						assert.True(t, has(s), "operations with a body document %s", s)
					}
					content := obj(obj(body)["content"])
					if js, ok := content["application/json"]; ok {
						assert.True(t, has("415"), "operations with a JSON body document 415")
						schema := v.resolve(obj(obj(js)["schema"]))
						assert.Equal(t, false, schema["additionalProperties"], "unknown request fields are rejected")
					} else {
						// A raw upload: the body is the content.
						for mt, m := range content {
							assert.Equal(t, "string", obj(obj(m)["schema"])["type"], "a %s body is a string of bytes", mt)
						}
					}
				}
				for status, r := range responses {
					r := v.resolve(obj(r))
					assert.NotEmpty(t, r["description"], "response %s has no description", status)
					assert.Contains(t, obj(r["headers"]), RequestIDHeader, "response %s lacks the X-Request-ID header", status)
					if isError := status == "default" || status >= "400"; isError && strings.HasPrefix(path, "/api/v1/") {
						content := obj(r["content"])
						if _, plain := content["text/plain"]; plain && has("101") && status != "429" && status != "default" {
							// The handshake errors of a WebSocket upgrade
							// come from the WebSocket library, as text;
							// the rate limiter and panics still answer
							// with the envelope.
							assert.Len(t, content, 1, "response %s", status)
							continue
						}
						schema := obj(obj(content["application/json"])["schema"])
						assert.Equal(t, "#/components/schemas/Error", schema["$ref"], "error response %s must use the envelope", status)
					}
				}
			})
		}
	}
	assert.Equal(t, len(documentedOperations(doc)), ops)

	t.Run("error envelope", func(t *testing.T) {
		codes := arr(obj(obj(obj(doc["components"])["schemas"])["ErrorCode"])["enum"])
		var want []any
		for code := range statusOf {
			want = append(want, code)
		}
		assert.ElementsMatch(t, want, codes, "ErrorCode enum must list every code of statusOf")
		inner := obj(obj(v.resolve(map[string]any{"$ref": "#/components/schemas/Error"})["properties"])["error"])
		assert.ElementsMatch(t, []any{"code", "message", "details", "correlation_id"}, keys(obj(inner["properties"])))
	})
}

// TestOpenAPISecurity checks that exactly the operations the document marks
// as needing a bearer token refuse a request without one.
func TestOpenAPISecurity(t *testing.T) {
	a := newRealtimeTestAPI(t, Config{}, testDomainConfig()) // with every route cmd/tone serves
	doc := openAPIDoc(t)
	for path, rawItem := range obj(doc["paths"]) {
		for _, method := range operationMethods {
			rawOp, ok := obj(rawItem)[method]
			if !ok {
				continue
			}
			op := obj(rawOp)
			secured := true
			if sec, ok := op["security"]; ok {
				secured = len(arr(sec)) > 0
			}
			url := regexp.MustCompile(`\{[^}]+\}`).ReplaceAllStringFunc(path, func(string) string { return uuid.NewString() })
			var body any
			if _, ok := op["requestBody"]; ok {
				body = map[string]any{}
			}
			resp := a.do(strings.ToUpper(method), url, "", body)
			noToken := resp.Status == http.StatusUnauthorized && resp.errMessage(t) == "Sign in first: no access token."
			if method == "head" { // no body to read the message from
				noToken = resp.Status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != ""
			}
			assert.Equal(t, secured, noToken, "%s %s: documented as secured=%v, answered %d without a token", method, path, secured, resp.Status)
		}
	}
}

// schemaValidator checks JSON values against the schemas of an OpenAPI
// document. It knows the JSON Schema keywords the document uses and reports
// any other as unsupported, so a schema it cannot check never passes
// silently. In strict mode an object schema that lists properties accepts no
// others unless it says additionalProperties, so undocumented response
// fields are caught.
type schemaValidator struct {
	doc    map[string]any
	strict bool
}

// annotations are keywords that do not constrain values.
var annotations = map[string]bool{"description": true, "title": true, "default": true, "example": true,
	"examples": true, "deprecated": true, "readOnly": true, "writeOnly": true, "contentMediaType": true}

// lookup returns the node a local reference points at.
func (v *schemaValidator) lookup(ref string) (map[string]any, error) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("reference %q is not local", ref)
	}
	var node any = v.doc
	for _, part := range strings.Split(p, "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := node.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("reference %q does not resolve", ref)
		}
		if node, ok = m[part]; !ok {
			return nil, fmt.Errorf("reference %q does not resolve", ref)
		}
	}
	m, ok := node.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("reference %q is not an object", ref)
	}
	return m, nil
}

// resolve follows $ref until it reaches a node without one.
func (v *schemaValidator) resolve(node map[string]any) map[string]any {
	for i := 0; i < 16; i++ {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		next, err := v.lookup(ref)
		if err != nil {
			return map[string]any{"x-broken-ref": ref}
		}
		node = next
	}
	return node
}

// validate returns the ways in which val breaks schema, each prefixed with
// the location of the offending value.
func (v *schemaValidator) validate(at string, schema map[string]any, val any) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if ref, ok := schema["x-broken-ref"]; ok {
		fail("unresolvable $ref %v", ref)
		return errs
	}
	if _, ok := schema["$ref"]; ok {
		return v.validate(at, v.resolve(schema), val)
	}
	for kw, arg := range schema {
		switch kw {
		case "type":
			types, ok := arg.([]any)
			if !ok {
				types = []any{arg}
			}
			if !slices.ContainsFunc(types, func(t any) bool { return jsonTypeIs(val, t.(string)) }) {
				fail("want type %v, got %s", arg, jsonTypeOf(val))
				return errs
			}
		case "const":
			if val != arg {
				fail("want %v, got %v", arg, val)
			}
		case "enum":
			if !slices.Contains(arg.([]any), val) {
				fail("%v is not one of %v", val, arg)
			}
		case "format":
			s, ok := val.(string)
			if !ok {
				continue
			}
			switch arg {
			case "uuid":
				if _, err := uuid.Parse(s); err != nil || len(s) != 36 {
					fail("%q is not a uuid", s)
				}
			case "date-time":
				if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
					fail("%q is not a date-time", s)
				}
			case "email":
				if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
					fail("%q is not an email", s)
				}
			default:
				fail("unsupported format %v", arg)
			}
		case "contentEncoding":
			// An annotation in JSON Schema 2020-12; checked here because
			// clients will decode it.
			s, ok := val.(string)
			if !ok {
				continue
			}
			if arg != "base64" {
				fail("unsupported contentEncoding %v", arg)
			} else if _, err := base64.StdEncoding.Strict().DecodeString(s); err != nil {
				fail("%q is not standard base64: %v", truncate(s, 32), err)
			}
		case "minLength", "maxLength":
			if s, ok := val.(string); ok {
				n := utf8.RuneCountInString(s)
				if kw == "minLength" && float64(n) < arg.(float64) || kw == "maxLength" && float64(n) > arg.(float64) {
					fail("length %d breaks %s %v", n, kw, arg)
				}
			}
		case "minimum", "maximum":
			if n, ok := val.(float64); ok {
				if kw == "minimum" && n < arg.(float64) || kw == "maximum" && n > arg.(float64) {
					fail("%v breaks %s %v", n, kw, arg)
				}
			}
		case "pattern":
			if s, ok := val.(string); ok && !regexp.MustCompile(arg.(string)).MatchString(s) {
				fail("%q does not match %v", s, arg)
			}
		case "required":
			if m, ok := val.(map[string]any); ok {
				for _, k := range arg.([]any) {
					if _, ok := m[k.(string)]; !ok {
						fail("required property %q is missing", k)
					}
				}
			}
		case "properties", "additionalProperties":
			if kw == "additionalProperties" {
				if _, ok := schema["properties"]; ok {
					continue // checked with properties
				}
			}
			m, ok := val.(map[string]any)
			if !ok {
				continue
			}
			props := obj(schema["properties"])
			extra, hasExtra := schema["additionalProperties"]
			for k, pv := range m {
				if ps, ok := props[k]; ok {
					errs = append(errs, v.validate(at+"."+k, obj(ps), pv)...)
					continue
				}
				switch e := extra.(type) {
				case bool:
					if !e {
						fail("property %q is not allowed", k)
					}
				case map[string]any:
					errs = append(errs, v.validate(at+"."+k, e, pv)...)
				default:
					if !hasExtra && v.strict && len(props) > 0 {
						fail("property %q is not documented", k)
					}
				}
			}
		case "items":
			for i, it := range arr(val) {
				errs = append(errs, v.validate(at+"["+strconv.Itoa(i)+"]", obj(arg), it)...)
			}
		default:
			if !annotations[kw] {
				fail("unsupported schema keyword %q", kw)
			}
		}
	}
	return errs
}

func jsonTypeIs(val any, typ string) bool {
	switch typ {
	case "object":
		_, ok := val.(map[string]any)
		return ok
	case "array":
		_, ok := val.([]any)
		return ok
	case "string":
		_, ok := val.(string)
		return ok
	case "number":
		_, ok := val.(float64)
		return ok
	case "integer":
		n, ok := val.(float64)
		return ok && n == math.Trunc(n)
	case "boolean":
		_, ok := val.(bool)
		return ok
	case "null":
		return val == nil
	}
	return false
}

func jsonTypeOf(val any) string {
	for _, t := range []string{"object", "array", "string", "integer", "number", "boolean", "null"} {
		if jsonTypeIs(val, t) {
			return t
		}
	}
	return fmt.Sprintf("%T", val)
}

// checkDocumented checks one response against the document: its status must
// be documented for the route (5xx may fall to default), its JSON body must
// match the schema and its documented headers must be present. Requests
// that match no route are not checked.
func checkDocumented(t testing.TB, doc map[string]any, router chi.Router, method, path string, resp *response) {
	t.Helper()
	pattern := router.Find(chi.NewRouteContext(), method, path)
	if pattern == "" {
		return
	}
	op := obj(obj(obj(doc["paths"])[pattern])[strings.ToLower(method)])
	if op == nil {
		t.Errorf("%s %s (route %s) is not in openapi.yaml", method, path, pattern)
		return
	}
	v := &schemaValidator{doc: doc, strict: true}
	raw, ok := obj(op["responses"])[strconv.Itoa(resp.Status)]
	if !ok && resp.Status >= 500 {
		raw, ok = obj(op["responses"])["default"]
	}
	if !ok {
		t.Errorf("%s %s answered %d, which openapi.yaml does not document for %s %s:\n%s", method, path, resp.Status, method, pattern, resp.Body)
		return
	}
	r := v.resolve(obj(raw))
	for name := range obj(r["headers"]) {
		if resp.Header.Get(name) == "" {
			t.Errorf("%s %s answered %d without the documented %s header", method, path, resp.Status, name)
		}
	}
	if method == http.MethodHead {
		return // no body; the document describes that of the GET or error
	}
	content := obj(r["content"])
	if len(content) == 0 {
		if len(resp.Body) > 0 {
			t.Errorf("%s %s answered %d with a body the document does not mention: %s", method, path, resp.Status, resp.Body)
		}
		return
	}
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	media, ok := content[mt]
	if !ok { // a media range: the artifact download answers its artifact's type
		major, _, _ := strings.Cut(mt, "/")
		if media, ok = content[major+"/*"]; !ok {
			media, ok = content["*/*"]
		}
	}
	if !ok {
		t.Errorf("%s %s answered %d with Content-Type %q; documented: %v", method, path, resp.Status, ct, keys(content))
		return
	}
	if mt != "application/json" {
		return
	}
	var body any
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		t.Errorf("%s %s answered %d with invalid JSON: %v", method, path, resp.Status, err)
		return
	}
	for _, e := range v.validate("body", obj(obj(media)["schema"]), body) {
		t.Errorf("%s %s answered %d with a body that breaks its schema: %s", method, path, resp.Status, e)
	}
}

// TestSchemaValidator keeps the validator honest: it must reject what the
// schemas forbid, or the response checks would pass vacuously.
func TestSchemaValidator(t *testing.T) {
	doc := openAPIDoc(t)
	v := &schemaValidator{doc: doc, strict: true}
	member := map[string]any{"$ref": "#/components/schemas/Member"}
	good := map[string]any{"user_id": uuid.NewString(), "email": "a@example.com", "display_name": "A",
		"role": "viewer", "created_at": "2026-01-02T03:04:05.123Z", "updated_at": "2026-01-02T03:04:05Z"}
	assert.Empty(t, v.validate("body", member, good))
	for name, change := range map[string]func(m map[string]any){
		"missing field":  func(m map[string]any) { delete(m, "email") },
		"bad uuid":       func(m map[string]any) { m["user_id"] = "nope" },
		"bad date-time":  func(m map[string]any) { m["created_at"] = "yesterday" },
		"bad email":      func(m map[string]any) { m["email"] = "Bob <b@example.com>" },
		"bad enum":       func(m map[string]any) { m["role"] = "root" },
		"wrong type":     func(m map[string]any) { m["display_name"] = 3.0 },
		"extra property": func(m map[string]any) { m["password_hash"] = "x" },
	} {
		m := map[string]any{}
		for k, val := range good {
			m[k] = val
		}
		change(m)
		assert.NotEmpty(t, v.validate("body", member, m), name)
	}
	req := map[string]any{"$ref": "#/components/schemas/AddMemberRequest"}
	assert.NotEmpty(t, v.validate("body", req, map[string]any{"email": "a@example.com", "role": "viewer", "x": 1.0}))
	list := map[string]any{"$ref": "#/components/schemas/MemberList"}
	assert.Empty(t, v.validate("body", list, map[string]any{"items": []any{good}, "next_cursor": "abc"}))
	assert.NotEmpty(t, v.validate("body", list, map[string]any{"items": nil}))
	assert.NotEmpty(t, v.validate("body", map[string]any{"oneOf": []any{}}, 1.0), "unknown keywords are reported")

	version := map[string]any{"$ref": "#/components/schemas/CanvasVersion"}
	goodVersion := map[string]any{"id": uuid.NewString(), "canvas_id": uuid.NewString(), "name": "v1",
		"version": map[string]any{"4294967296": 3.0}, "created_by": uuid.NewString(),
		"created_at": "2026-01-02T03:04:05Z", "snapshot": "3AABkw=="}
	assert.Empty(t, v.validate("body", version, goodVersion))
	for name, change := range map[string]func(m map[string]any){
		"snapshot not base64":    func(m map[string]any) { m["snapshot"] = "not base64!" },
		"snapshot url base64":    func(m map[string]any) { m["snapshot"] = "3AABkw-_" },
		"version seq not number": func(m map[string]any) { m["version"] = map[string]any{"7": "3"} },
		"version seq fractional": func(m map[string]any) { m["version"] = map[string]any{"7": 1.5} },
		"version not object":     func(m map[string]any) { m["version"] = []any{} },
	} {
		m := map[string]any{}
		for k, val := range goodVersion {
			m[k] = val
		}
		change(m)
		assert.NotEmpty(t, v.validate("body", version, m), name)
	}
}

func walkJSON(node any, visit func(map[string]any)) {
	switch n := node.(type) {
	case map[string]any:
		visit(n)
		for _, c := range n {
			walkJSON(c, visit)
		}
	case []any:
		for _, c := range n {
			walkJSON(c, visit)
		}
	}
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func arr(v any) []any {
	a, _ := v.([]any)
	return a
}

func keys(m map[string]any) []any {
	var out []any
	for k := range m {
		out = append(out, k)
	}
	return out
}
