package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"spillway/apierr"
	"spillway/store"
	"spillway/web"
)

// The API's routes are declared once, in the table routes builds. The
// matcher, the auth and upload-slot checks, the Allow header of a 405 and
// the observer's route label all come from it.
//
// Patterns are matched against the escaped path, so that a name is
// decoded exactly once, here, and a hostile name gets a 400 rather than
// the redirect net/http's mux would answer for a "..", "//" or "/./". A
// pattern is literal segments and wildcards:
//
//	{x}       one segment, possibly empty, as sent: upload IDs and part
//	          numbers are URL-safe, so a '%' in one is refused by its check
//	{x...}    the rest of the path, possibly empty, slashes included
//
// {name...} is a file name, and the one value decoded: a name that does not
// decode is refused as invalid_name.

// authRule is what a request must carry to use a route.
type authRule int

const (
	// authToken is the bearer token, when the handler has one.
	authToken authRule = iota + 1
	// authPartURL is the signature of a part URL the handler signed, in
	// place of the token: a part URL is handed out to token holders.
	authPartURL
	// authFormURL is the signature of a /s3/objects form URL, made from the
	// token, in place of the token: @uppy/aws-s3 posts the form with no
	// header of ours.
	authFormURL
	// authPublic is nothing: the page (which asks for the token itself),
	// the health check, and /metrics when Config.MetricsPublic says so.
	authPublic
)

func (a authRule) String() string {
	switch a {
	case authToken:
		return "token"
	case authPartURL:
		return "part URL"
	case authFormURL:
		return "form URL"
	case authPublic:
		return "public"
	}
	return fmt.Sprintf("authRule(%d)", int(a))
}

// A route serves one pattern for a set of methods.
type route struct {
	pattern string
	// methods are the methods served, in the order the Allow header lists
	// them; nil serves every method.
	methods []string
	auth    authRule
	// upload marks the requests that carry or publish a file's bytes: they
	// take an upload slot and count as uploads for the observer.
	upload bool
	// multipart marks the routes of uploads in parts, which a server whose
	// store cannot take them answers with 501.
	multipart bool
	serve     func(w http.ResponseWriter, r *http.Request, x *exchange) error
}

// serves reports whether the route serves method.
func (rt *route) serves(method string) bool {
	if rt.methods == nil {
		return true
	}
	for _, m := range rt.methods {
		if m == method {
			return true
		}
	}
	return false
}

var (
	getHead = []string{http.MethodGet, http.MethodHead}
	put     = []string{http.MethodPut}
	post    = []string{http.MethodPost}
	del     = []string{http.MethodDelete}
)

// nameParam is the wildcard that holds a file name.
const nameParam = "name"

// routes returns the handler's route table. Which routes there are depends
// on the configuration: /metrics only with Config.Metrics, and the part
// PUT only for a store that takes parts through the handler.
func (h *Handler) routes(cfg Config) []route {
	rs := []route{
		{pattern: "/", methods: getHead, auth: authPublic, serve: func(w http.ResponseWriter, r *http.Request, _ *exchange) error {
			web.ServePage(w, r)
			return nil
		}},
		{pattern: "/healthz", methods: getHead, auth: authPublic, serve: func(w http.ResponseWriter, _ *http.Request, _ *exchange) error {
			writeJSON(w, http.StatusOK, h.health)
			return nil
		}},
	}
	if cfg.Metrics != nil {
		auth := authToken
		if cfg.MetricsPublic {
			auth = authPublic
		}
		rs = append(rs, route{pattern: "/metrics", methods: getHead, auth: auth, serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			if x.user != "" {
				// The server's figures are the operator's, not a user's.
				return fmt.Errorf("%w: user %q asked for /metrics", apierr.ErrUnauthorized, x.user)
			}
			cfg.Metrics.ServeHTTP(w, r)
			return nil
		}})
	}
	rs = append(rs,
		route{pattern: "/files", methods: getHead, auth: authToken, serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			return h.list(w, r, x)
		}},
		route{pattern: "/files", methods: post, auth: authToken, upload: true, serve: h.postMultipart},
		route{pattern: "/files/{name...}", methods: getHead, auth: authToken, serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			return h.download(w, r, x.name(r.PathValue(nameParam)))
		}},
		route{pattern: "/files/{name...}", methods: put, auth: authToken, upload: true, serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			return h.putRaw(w, r, x, x.name(r.PathValue(nameParam)))
		}},
		route{pattern: "/files/{name...}", methods: del, auth: authToken, serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			return h.deleteFile(w, r, x.name(r.PathValue(nameParam)))
		}},
		route{pattern: "/uploads", methods: post, auth: authToken, multipart: true, serve: h.createUpload},
		route{pattern: "/uploads/{id}", methods: getHead, auth: authToken, multipart: true, serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			return h.uploadState(w, r, x, r.PathValue("id"))
		}},
		route{pattern: "/uploads/{id}", methods: del, auth: authToken, multipart: true, serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			return h.abortUpload(w, r, x, r.PathValue("id"))
		}},
		route{pattern: "/uploads/{id}/parts", methods: getHead, auth: authToken, multipart: true, serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			return h.partURLs(w, r, x, r.PathValue("id"))
		}},
		route{pattern: "/uploads/{id}/complete", methods: post, auth: authToken, upload: true, multipart: true, serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			return h.completeUpload(w, r, x, r.PathValue("id"))
		}},
	)
	if h.partWriter != nil {
		// A presigning store takes the parts itself: their URLs are its own.
		rs = append(rs, route{pattern: "/uploads/{id}/parts/{n}", methods: put, auth: authPartURL, upload: true, multipart: true,
			serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
				// The signature check parsed the same number.
				n, err := partNumber(r)
				if err != nil {
					return err
				}
				return h.putPart(w, r, x, r.PathValue("id"), n)
			}})
	}
	// Companion's S3 routes, for @uppy/aws-s3 (api/companion.go).
	rs = append(rs,
		route{pattern: "/s3/params", methods: getHead, auth: authToken, serve: h.s3Params},
		route{pattern: "/s3/objects", methods: post, auth: authFormURL, upload: true, serve: h.s3Object},
		// Where the plugin says a file sent whole is: its form URL and key.
		route{pattern: "/s3/objects/{name...}", methods: getHead, auth: authToken, serve: func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			return h.download(w, r, x.name(r.PathValue(nameParam)))
		}},
		route{pattern: "/s3/multipart", methods: post, auth: authToken, multipart: true, serve: h.s3Create},
		route{pattern: "/s3/multipart/{id}", methods: getHead, auth: authToken, multipart: true, serve: h.s3ListParts},
		route{pattern: "/s3/multipart/{id}", methods: del, auth: authToken, multipart: true, serve: h.s3Abort},
		// Before {n}: "complete" is no part number.
		route{pattern: "/s3/multipart/{id}/complete", methods: post, auth: authToken, upload: true, multipart: true, serve: h.s3Complete},
		route{pattern: "/s3/multipart/{id}/{n}", methods: getHead, auth: authToken, multipart: true, serve: h.s3SignPart},
	)
	rs = append(rs, h.tusRoutes()...)
	// Any other path under /uploads is no route, but a server whose store
	// cannot take parts says that first.
	return append(rs, route{pattern: "/uploads/{rest...}", auth: authToken, multipart: true,
		serve: func(_ http.ResponseWriter, r *http.Request, _ *exchange) error {
			return fmt.Errorf("%w: %s", errRouteNotFound, r.URL.EscapedPath())
		}})
}

// table is the parsed route table: its patterns in the order they are
// first declared, which is the order they are tried in.
type table struct {
	patterns []*pattern
}

// pattern is one path pattern and the routes that serve it.
type pattern struct {
	text      string
	segs      []segment
	routes    []*route
	allow     string   // the Allow header of a 405
	public    bool     // every route is public, so a 405 needs no token
	multipart bool     // a route serves uploads in parts
	params    []string // the wildcards' names, in order
}

type segment struct {
	literal string // when not a wildcard
	param   string // the wildcard's name, "" for a literal
	rest    bool   // {param...}
}

// newTable parses the routes. A malformed table is a programming error,
// caught by any test that makes a handler.
func newTable(routes []route) *table {
	t := &table{}
	byText := make(map[string]*pattern)
	for i := range routes {
		rt := &routes[i]
		if rt.auth == 0 || rt.serve == nil {
			panic(fmt.Sprintf("api: route %q has no auth rule or no handler", rt.pattern))
		}
		p := byText[rt.pattern]
		if p == nil {
			p = parsePattern(rt.pattern)
			p.public = true
			byText[rt.pattern] = p
			t.patterns = append(t.patterns, p)
		}
		for _, other := range p.routes {
			if rt.methods == nil || other.methods == nil || slices.ContainsFunc(rt.methods, other.serves) {
				panic(fmt.Sprintf("api: two routes of %s serve one method", rt.pattern))
			}
		}
		p.routes = append(p.routes, rt)
		p.public = p.public && rt.auth == authPublic
		p.multipart = p.multipart || rt.multipart
	}
	for _, p := range t.patterns {
		var methods []string
		for _, rt := range p.routes {
			methods = append(methods, rt.methods...)
		}
		p.allow = strings.Join(methods, ", ")
	}
	return t
}

func parsePattern(text string) *pattern {
	rest, ok := strings.CutPrefix(text, "/")
	if !ok {
		panic(fmt.Sprintf("api: pattern %q does not start with /", text))
	}
	p := &pattern{text: text}
	for s := range strings.SplitSeq(rest, "/") {
		if len(p.segs) > 0 && p.segs[len(p.segs)-1].rest {
			panic(fmt.Sprintf("api: pattern %q has a segment after {...}", text))
		}
		name, ok := strings.CutPrefix(s, "{")
		if !ok {
			p.segs = append(p.segs, segment{literal: s})
			continue
		}
		name, ok = strings.CutSuffix(name, "}")
		if !ok || name == "" {
			panic(fmt.Sprintf("api: pattern %q has a malformed wildcard %q", text, s))
		}
		name, isRest := strings.CutSuffix(name, "...")
		p.segs = append(p.segs, segment{param: name, rest: isRest})
		p.params = append(p.params, name)
	}
	return p
}

// match is what the table makes of one request.
type match struct {
	pattern *pattern // nil: no route has this path
	route   *route   // nil: the pattern does not serve the method
	values  []string // the wildcards' values, in pattern.params' order
	err     error    // a name that does not decode
}

// match finds the route of a request from its method and escaped path.
func (t *table) match(method, p string) match {
	// "/files/" is the list, as "/files" is, for every method but PUT: a
	// PUT there names a file, the empty name, and is refused as invalid_name
	// as any bad name is.
	if p == "/files/" && method != http.MethodPut {
		p = "/files"
	}
	for _, pat := range t.patterns {
		values, ok := pat.match(p)
		if !ok {
			continue
		}
		m := match{pattern: pat, values: values}
		for i, name := range pat.params {
			if name != nameParam {
				continue
			}
			v, err := url.PathUnescape(values[i])
			if err != nil {
				m.err = fmt.Errorf("%w: %v", store.ErrInvalidName, err)
			}
			m.values[i] = v
		}
		for _, rt := range pat.routes {
			if rt.serves(method) {
				m.route = rt
				break
			}
		}
		return m
	}
	return match{}
}

// match reports whether the escaped path p has the pattern, and the values
// of its wildcards.
func (pat *pattern) match(p string) ([]string, bool) {
	rest, ok := strings.CutPrefix(p, "/")
	if !ok {
		return nil, false
	}
	var values []string
	for i, s := range pat.segs {
		if s.rest {
			return append(values, rest), true
		}
		seg, tail, more := strings.Cut(rest, "/")
		if s.param != "" {
			values = append(values, seg)
		} else if seg != s.literal {
			return nil, false
		}
		if more != (i < len(pat.segs)-1) {
			return nil, false
		}
		rest = tail
	}
	return values, true
}

// label is the route label of a request for the observer: its pattern, or
// "" for a path no route has.
func (m match) label() string {
	if m.pattern == nil {
		return ""
	}
	return m.pattern.text
}

// setPathValues makes the wildcards' values r.PathValue's.
func (m match) setPathValues(r *http.Request) {
	if m.pattern == nil {
		return
	}
	for i, name := range m.pattern.params {
		r.SetPathValue(name, m.values[i])
	}
}

// dispatch serves a request with its matched route: auth first, then the
// upload slot, all before the body is read.
func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request, x *exchange) error {
	m := x.match
	if err := h.authorize(w, r, x); err != nil {
		return err
	}
	if m.route != nil && m.route.upload {
		if h.slots != nil {
			select {
			case h.slots <- struct{}{}:
				defer func() { <-h.slots }()
			default:
				return fmt.Errorf("%w: %d uploads already in progress", errBusy, cap(h.slots))
			}
		}
		if h.observer != nil {
			h.observer.UploadStarted()
			defer h.observer.UploadDone()
		}
	}
	switch {
	case m.pattern == nil:
		return fmt.Errorf("%w: %s", errRouteNotFound, r.URL.EscapedPath())
	case m.err != nil:
		return m.err
	case m.pattern.multipart && h.multipart == nil:
		return errNoMultipart
	case m.route == nil:
		w.Header().Set("Allow", m.pattern.allow)
		return errMethod
	}
	return m.route.serve(w, r, x)
}

// authorize applies the route's auth rule. A path no route has, and a
// method its pattern does not serve, need the token unless every route of
// the pattern is public: a 405 tells no more than the token allows.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, x *exchange) error {
	m := x.match
	rule := authToken
	switch {
	case m.route != nil:
		rule = m.route.auth
	case m.pattern != nil && m.pattern.public:
		rule = authPublic
	}
	switch rule {
	case authPublic:
		return nil
	case authPartURL:
		return h.verifyPartURL(r)
	case authFormURL:
		return h.verifyFormURL(r, x)
	}
	return h.authenticate(w, r, x)
}

// partNumber is the {n} of a part PUT.
func partNumber(r *http.Request) (int, error) {
	s := r.PathValue("n")
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: part number %q", errBadSignature, s)
	}
	return n, nil
}
