// Package infra holds the deployment files; its tests check that
// ../template.yaml passes the SAM transform and says what it means to.
package infra

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// transformScript runs the SAM transform (aws-sam-translator) as `sam
// deploy` has CloudFormation run it, offline: the CodeUri is replaced by
// an S3 URI as `sam package` does, and the managed-policy loader, which
// would ask IAM, knows the one policy SAM may name by itself. The region
// comes from AWS_DEFAULT_REGION.
const transformScript = `
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class Policies:
    def load(self):
        return {"AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}

with open(sys.argv[1]) as f:
    template = yaml_parse(f.read())
for r in template["Resources"].values():
    if r["Type"] == "AWS::Serverless::Function":
        r["Properties"]["CodeUri"] = "s3://packaged/bootstrap.zip"
json.dump(transform(template, {}, Policies()), sys.stdout)
`

// transformed returns template.yaml after the SAM transform. Without
// python3 or aws-sam-translator, which no registry this project uses can
// install, it skips with one line saying which is missing.
func transformed(t *testing.T) map[string]any {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed: the SAM transform is not checked")
	}
	if err := exec.Command("python3", "-c", "import samtranslator").Run(); err != nil {
		t.Skip("aws-sam-translator is not installed for python3: the SAM transform is not checked")
	}
	cmd := exec.Command("python3", "-c", transformScript, "../template.yaml")
	cmd.Env = append(os.Environ(), "AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "the SAM transform failed:\n%s", stderr.String())
	var tpl map[string]any
	require.NoError(t, json.Unmarshal(out, &tpl))
	return tpl
}

// stack is the transformed template as CloudFormation would create it for
// some parameter values: conditions decided, Fn::If chosen, AWS::NoValue
// dropped, parameters substituted. References to resources stay as they
// are.
type stack struct {
	params     map[string]string
	conditions map[string]any
	decided    map[string]bool
}

func newStack(t *testing.T, tpl map[string]any, overrides map[string]string) *stack {
	t.Helper()
	s := &stack{params: map[string]string{}, decided: map[string]bool{}}
	s.conditions, _ = tpl["Conditions"].(map[string]any)
	for name, p := range tpl["Parameters"].(map[string]any) {
		if d, ok := p.(map[string]any)["Default"]; ok {
			s.params[name] = fmt.Sprint(d)
		}
	}
	for name, v := range overrides {
		_, ok := tpl["Parameters"].(map[string]any)[name]
		require.True(t, ok, "no parameter %s", name)
		s.params[name] = v
	}
	return s
}

// noValue stands for AWS::NoValue while a value is resolved.
var noValue = &struct{}{}

// resolve returns v as CloudFormation would see it.
func (s *stack) resolve(t *testing.T, v any) any {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 1 {
			for k, arg := range v {
				switch k {
				case "Fn::If":
					a := arg.([]any)
					if s.condition(t, a[0].(string)) {
						return s.resolve(t, a[1])
					}
					return s.resolve(t, a[2])
				case "Ref":
					name := arg.(string)
					if name == "AWS::NoValue" {
						return noValue
					}
					if p, ok := s.params[name]; ok {
						return p
					}
				case "Fn::Split":
					a := arg.([]any)
					if str, ok := s.resolve(t, a[1]).(string); ok {
						var out []any
						for _, e := range strings.Split(str, a[0].(string)) {
							out = append(out, e)
						}
						return out
					}
				case "Fn::Select":
					a := arg.([]any)
					i, err := strconv.Atoi(fmt.Sprint(a[0]))
					require.NoError(t, err, "Fn::Select index %v", a[0])
					if list, ok := s.resolve(t, a[1]).([]any); ok {
						require.Less(t, i, len(list), "Fn::Select %d of %v", i, list)
						return list[i]
					}
				case "Fn::Sub":
					if str, ok := arg.(string); ok {
						str = subRE.ReplaceAllStringFunc(str, func(m string) string {
							if p, ok := s.params[m[2:len(m)-1]]; ok {
								return p
							}
							return m
						})
						if subRE.MatchString(str) { // resource attributes
							return map[string]any{"Fn::Sub": str}
						}
						return str
					}
				}
			}
		}
		out := map[string]any{}
		for k, e := range v {
			if r := s.resolve(t, e); r != noValue {
				out[k] = r
			}
		}
		return out
	case []any:
		var out []any
		for _, e := range v {
			if r := s.resolve(t, e); r != noValue {
				out = append(out, r)
			}
		}
		return out
	}
	return v
}

var subRE = regexp.MustCompile(`\$\{[^}]+\}`)

// condition decides a named condition.
func (s *stack) condition(t *testing.T, name string) bool {
	t.Helper()
	if d, ok := s.decided[name]; ok {
		return d
	}
	c, ok := s.conditions[name]
	require.True(t, ok, "no condition %s", name)
	d := s.eval(t, c)
	s.decided[name] = d
	return d
}

func (s *stack) eval(t *testing.T, c any) bool {
	t.Helper()
	m, ok := c.(map[string]any)
	require.True(t, ok && len(m) == 1, "a condition function: %v", c)
	for k, arg := range m {
		switch k {
		case "Condition":
			return s.condition(t, arg.(string))
		case "Fn::Not":
			return !s.eval(t, arg.([]any)[0])
		case "Fn::And", "Fn::Or":
			all := k == "Fn::And"
			for _, e := range arg.([]any) {
				if s.eval(t, e) != all {
					return !all
				}
			}
			return all
		case "Fn::Equals":
			a := arg.([]any)
			return fmt.Sprint(s.resolve(t, a[0])) == fmt.Sprint(s.resolve(t, a[1]))
		}
	}
	t.Fatalf("unknown condition function in %v", c)
	return false
}

// resource returns a resource's properties as created, or nil when its
// condition leaves it out.
func (s *stack) resource(t *testing.T, tpl map[string]any, name string) map[string]any {
	t.Helper()
	r, ok := tpl["Resources"].(map[string]any)[name].(map[string]any)
	require.True(t, ok, "no resource %s", name)
	if c, ok := r["Condition"].(string); ok && !s.condition(t, c) {
		return nil
	}
	props, _ := s.resolve(t, r["Properties"]).(map[string]any)
	return props
}

// statements returns every IAM statement of the role's inline policies.
func statements(role map[string]any) []map[string]any {
	var out []map[string]any
	for _, p := range role["Policies"].([]any) {
		for _, st := range p.(map[string]any)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out = append(out, st.(map[string]any))
		}
	}
	return out
}

func actions(st map[string]any) []string {
	switch a := st["Action"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, e := range a {
			out = append(out, e.(string))
		}
		return out
	}
	return nil
}

func TestTemplateTransforms(t *testing.T) {
	tpl := transformed(t)
	resources := tpl["Resources"].(map[string]any)

	t.Run("function", func(t *testing.T) {
		s := newStack(t, tpl, nil)
		fn := s.resource(t, tpl, "UploadFunction")
		require.NotNil(t, fn)
		assert.Equal(t, map[string]any{"Size": float64(512)}, fn["EphemeralStorage"])
		assert.Equal(t, map[string]any{"LogGroup": map[string]any{"Ref": "UploadFunctionLogGroup"}}, fn["LoggingConfig"])
		assert.Equal(t, map[string]any{"Fn::GetAtt": []any{"UploadFunctionRole", "Arn"}}, fn["Role"])
		logs := s.resource(t, tpl, "UploadFunctionLogGroup")
		assert.NotEmpty(t, logs["RetentionInDays"], "the log group expires its events")
	})

	t.Run("reserved concurrency", func(t *testing.T) {
		fn := newStack(t, tpl, nil).resource(t, tpl, "UploadFunction")
		assert.Equal(t, "10", fn["ReservedConcurrentExecutions"], "reserved by default")
		fn = newStack(t, tpl, map[string]string{"ReservedConcurrentExecutions": "25"}).resource(t, tpl, "UploadFunction")
		assert.Equal(t, "25", fn["ReservedConcurrentExecutions"])
		fn = newStack(t, tpl, map[string]string{"ReservedConcurrentExecutions": "0"}).resource(t, tpl, "UploadFunction")
		assert.NotContains(t, fn, "ReservedConcurrentExecutions", "0 reserves nothing (rather than throttling every call)")
	})

	// SAM's generated role would carry AWSLambdaBasicExecutionRole: logs
	// on every group of the account. No role may, and no statement may
	// grant anything on "*".
	t.Run("no role beyond the function's own", func(t *testing.T) {
		var roles []string
		for name, r := range resources {
			r := r.(map[string]any)
			if r["Type"] != "AWS::IAM::Role" {
				continue
			}
			roles = append(roles, name)
			props := r["Properties"].(map[string]any)
			assert.NotContains(t, props, "ManagedPolicyArns", "%s has managed policies", name)
			for _, st := range statements(props) {
				assert.NotEqual(t, "*", st["Resource"], "%s: %v", name, st)
				for _, a := range actions(st) {
					assert.NotContains(t, a, "*", "%s: %v", name, st)
				}
			}
		}
		assert.Equal(t, []string{"UploadFunctionRole"}, roles)
	})

	t.Run("logs only to the function's log group", func(t *testing.T) {
		role := newStack(t, tpl, nil).resource(t, tpl, "UploadFunctionRole")
		var logActions []string
		for _, st := range statements(role) {
			for _, a := range actions(st) {
				if strings.HasPrefix(a, "logs:") {
					logActions = append(logActions, a)
					assert.Equal(t, map[string]any{"Fn::GetAtt": []any{"UploadFunctionLogGroup", "Arn"}}, st["Resource"])
				}
			}
		}
		slices.Sort(logActions)
		assert.Equal(t, []string{"logs:CreateLogStream", "logs:PutLogEvents"}, logActions)
	})

	// Exactly the actions behind store/s3store's calls; ListBucket limited
	// to the prefix when there is one.
	for _, c := range []struct {
		prefix, objects string
		list            any
	}{
		{"", "${UploadBucket.Arn}/*", nil},
		{"uploads/", "${UploadBucket.Arn}/uploads/*", map[string]any{"StringLike": map[string]any{"s3:prefix": "uploads/*"}}},
	} {
		t.Run(fmt.Sprintf("s3 with prefix %q", c.prefix), func(t *testing.T) {
			role := newStack(t, tpl, map[string]string{"Prefix": c.prefix}).resource(t, tpl, "UploadFunctionRole")
			s3 := map[string]map[string]any{}
			for _, st := range statements(role) {
				for _, a := range actions(st) {
					if strings.HasPrefix(a, "s3:") {
						require.NotContains(t, s3, a, "one statement per action")
						s3[a] = st
					}
				}
			}
			want := []string{"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:ListBucket", "s3:ListMultipartUploadParts", "s3:PutObject"}
			got := make([]string, 0, len(s3))
			for a := range s3 {
				got = append(got, a)
			}
			slices.Sort(got)
			assert.Equal(t, want, got)
			for a, st := range s3 {
				assert.Equal(t, "Allow", st["Effect"])
				if a == "s3:ListBucket" {
					assert.Equal(t, map[string]any{"Fn::GetAtt": []any{"UploadBucket", "Arn"}}, st["Resource"])
					if c.list == nil {
						assert.NotContains(t, st, "Condition")
					} else {
						assert.Equal(t, c.list, st["Condition"])
					}
					continue
				}
				assert.Equal(t, map[string]any{"Fn::Sub": c.objects}, st["Resource"], a)
				assert.NotContains(t, st, "Condition", a)
			}
		})
	}

	// SPILLWAY_RETENTION: the function only lists the expiry; S3 removes
	// the files, by a rule that exists only when the parameter is set, in
	// whole days, over the prefix.
	t.Run("retention", func(t *testing.T) {
		param, ok := tpl["Parameters"].(map[string]any)["Retention"].(map[string]any)
		require.True(t, ok, "no Retention parameter")
		pattern := regexp.MustCompile(param["AllowedPattern"].(string))
		for _, v := range []string{"", "0", "1d", "30d", "365d"} {
			assert.True(t, pattern.MatchString(v), "%q is accepted", v)
		}
		for _, v := range []string{"36h", "720h", "1.5d", "0d", "-1d", "30", "d", "30 d", "30D"} {
			assert.False(t, pattern.MatchString(v), "%q is refused at deploy time", v)
		}
		rules := func(params map[string]string) map[string]map[string]any {
			bucket := newStack(t, tpl, params).resource(t, tpl, "UploadBucket")
			out := map[string]map[string]any{}
			for _, r := range bucket["LifecycleConfiguration"].(map[string]any)["Rules"].([]any) {
				r := r.(map[string]any)
				out[r["Id"].(string)] = r
			}
			return out
		}
		for _, v := range []string{"", "0"} {
			got := rules(map[string]string{"Retention": v})
			assert.NotContains(t, got, "Retention", "retention %q keeps files forever", v)
			assert.Contains(t, got, "AbortIncompleteMultipartUploads")
			assert.Contains(t, got, "ExpireAbandonedUploads")
		}
		for _, c := range []struct{ retention, prefix, days string }{{"30d", "", "30"}, {"1d", "uploads/", "1"}} {
			got := rules(map[string]string{"Retention": c.retention, "Prefix": c.prefix})
			assert.Equal(t, map[string]any{"Id": "Retention", "Status": "Enabled", "Prefix": c.prefix, "ExpirationInDays": c.days}, got["Retention"], c.retention)
			assert.Contains(t, got, "AbortIncompleteMultipartUploads", "the other rules stay")
			assert.Contains(t, got, "ExpireAbandonedUploads", "the other rules stay")
		}
		fn := newStack(t, tpl, map[string]string{"Retention": "30d"}).resource(t, tpl, "UploadFunction")
		assert.Equal(t, "30d", fn["Environment"].(map[string]any)["Variables"].(map[string]any)["SPILLWAY_RETENTION"], "the function lists the same retention")
	})
	t.Run("EventBridge notifications", func(t *testing.T) {
		bucket := newStack(t, tpl, nil).resource(t, tpl, "UploadBucket")
		assert.NotContains(t, bucket, "NotificationConfiguration", "off by default")
		bucket = newStack(t, tpl, map[string]string{"EventBridgeNotifications": "true"}).resource(t, tpl, "UploadBucket")
		assert.Equal(t, map[string]any{"EventBridgeConfiguration": map[string]any{"EventBridgeEnabled": true}}, bucket["NotificationConfiguration"])
	})
}
