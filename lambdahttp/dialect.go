package lambdahttp

import (
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Dialect is the kind of HTTP event, named by the producer that sends it.
// They differ in where the method and path are, in whether the path is
// still percent-encoded, and in the response they take back.
type Dialect uint8

const (
	// Unknown is an event that is none of the others.
	Unknown Dialect = iota
	// FunctionURL is payload 2.0 from a Function URL (and from funcurl, the
	// local emulator): rawPath and rawQueryString as the client sent them.
	FunctionURL
	// HTTPAPI is payload 2.0 from an API Gateway HTTP API, or from `sam
	// local start-api` for HttpApi events: rawPath arrives decoded.
	HTTPAPI
	// REST is payload 1.0 from an API Gateway REST API, or from `sam local
	// start-api` for Api events: path and the query parameters arrive
	// decoded.
	REST
	// ALB is an Application Load Balancer's event: path and query
	// parameters as the client sent them.
	ALB
)

func (d Dialect) String() string {
	switch d {
	case FunctionURL:
		return "Function URL"
	case HTTPAPI:
		return "HTTP API"
	case REST:
		return "REST API"
	case ALB:
		return "ALB"
	}
	return "unknown"
}

// The largest encoded responses the producers take. Lambda caps a
// synchronous response; past the cap a Function URL answers 502 and the
// runtime process exits. An ALB takes at most 1 MB of response JSON, read
// here as the smaller, decimal megabyte.
const (
	MaxResponseBytes    = 6_291_556
	MaxALBResponseBytes = 1_000_000
)

// event holds the fields of every dialect, so that a payload is decoded
// once, whatever its dialect.
type event struct {
	Version string `json:"version"`

	// Payload 2.0.
	RouteKey       string   `json:"routeKey"`
	RawPath        string   `json:"rawPath"`
	RawQueryString string   `json:"rawQueryString"`
	Cookies        []string `json:"cookies"`

	// Payload 1.0 and ALB.
	HTTPMethod                      string              `json:"httpMethod"`
	Path                            string              `json:"path"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters"`

	Headers        map[string]string `json:"headers"`
	PathParameters map[string]string `json:"pathParameters"`
	RequestContext struct {
		DomainName string `json:"domainName"`
		Protocol   string `json:"protocol"` // payload 1.0
		HTTP       struct {
			Method   string `json:"method"`
			Path     string `json:"path"`
			Protocol string `json:"protocol"`
			SourceIP string `json:"sourceIp"`
		} `json:"http"`
		Identity struct {
			SourceIP string `json:"sourceIp"`
		} `json:"identity"`
		ELB *struct {
			TargetGroupARN string `json:"targetGroupArn"`
		} `json:"elb"`
	} `json:"requestContext"`
	Body            string `json:"body"`
	IsBase64Encoded bool   `json:"isBase64Encoded"`
}

// shape is what the response depends on: the dialect and, for an ALB,
// whether its target group sends (and so takes) multi-value headers.
type shape struct {
	dialect Dialect
	multi   bool
}

func (sh shape) limit() int {
	if sh.dialect == ALB {
		return MaxALBResponseBytes
	}
	return MaxResponseBytes
}

func (ev *event) shape() shape {
	return shape{dialect: ev.dialect(), multi: ev.MultiValueHeaders != nil}
}

// dialect tells the producer from the event itself:
//
//   - requestContext.elb is only in an ALB's events;
//   - httpMethod, outside a "2.0" event, is payload 1.0: API Gateway's;
//   - in payload 2.0, a Function URL's domainName is always
//     <url-id>.lambda-url.<region>.on.aws. API Gateway's is
//     <api-id>.execute-api.<region>.amazonaws.com or a custom domain, and
//     any route but $default gives a routeKey such as "ANY /{proxy+}" and,
//     for a greedy path, pathParameters: either marks an HTTP API event.
//     sam local start-api sends routeKey "ANY /{proxy+}" (the template's
//     route), pathParameters.proxy and domainName localhost.
//
// A 2.0 event with none of these marks is read as a Function URL's: the
// local emulator sends such events, with its own address as domainName. An
// HTTP API reached through a custom domain with nothing but a $default
// route looks exactly like that, and would be misread; give it a route.
func (ev *event) dialect() Dialect {
	switch {
	case ev.RequestContext.ELB != nil:
		return ALB
	case ev.Version != "2.0" && ev.HTTPMethod != "":
		return REST
	case ev.RequestContext.HTTP.Method == "" && ev.RawPath == "":
		return Unknown
	}
	dn := ev.RequestContext.DomainName
	switch {
	case strings.Contains(dn, ".lambda-url.") && strings.HasSuffix(dn, ".on.aws"):
		return FunctionURL
	case strings.Contains(dn, ".execute-api."),
		ev.RouteKey != "" && ev.RouteKey != "$default",
		len(ev.PathParameters) > 0:
		return HTTPAPI
	}
	return FunctionURL
}

// method is the event's method, in dialect d.
func (ev *event) method(d Dialect) string {
	switch d {
	case REST, ALB:
		return ev.HTTPMethod
	}
	return ev.RequestContext.HTTP.Method
}

// path is the event's path as it carries it, in dialect d.
func (ev *event) path(d Dialect) string {
	switch d {
	case REST, ALB:
		return ev.Path
	}
	return ev.RawPath
}

// restQuery encodes payload 1.0's decoded query parameters again. The
// multi-value ones are complete; the single-value ones keep only the last
// value of each.
func (ev *event) restQuery() string {
	v := url.Values(ev.MultiValueQueryStringParameters)
	if len(v) == 0 {
		v = make(url.Values, len(ev.QueryStringParameters))
		for k, s := range ev.QueryStringParameters {
			v[k] = []string{s}
		}
	}
	return v.Encode()
}

// albQuery joins an ALB's query parameters, which it passes on as the
// client sent them, still encoded.
func (ev *event) albQuery() string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	if len(ev.MultiValueQueryStringParameters) > 0 {
		for _, k := range slices.Sorted(maps.Keys(ev.MultiValueQueryStringParameters)) {
			for _, v := range ev.MultiValueQueryStringParameters[k] {
				add(k, v)
			}
		}
		return b.String()
	}
	for _, k := range slices.Sorted(maps.Keys(ev.QueryStringParameters)) {
		add(k, ev.QueryStringParameters[k])
	}
	return b.String()
}
