package config

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"spillway/api"
	"spillway/spool"
	"spillway/store/dirstore"
)

// The README's tables are generated from the declaration; a README edited
// by hand, or a setting added without running the generator, fails here.
func TestREADMETablesMatchTheDeclaration(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, err = UpdateREADME(string(readme))
	require.NoError(t, err, "run `%s` once the markers are in", UpdateCommand)
	for _, p := range []Program{Server, Function} {
		begin := fmt.Sprintf(beginMarker, p)
		_, block, _ := strings.Cut(string(readme), begin+"\n\n")
		block, _, _ = strings.Cut(block, "\n"+endMarker)
		assert.Equal(t, Table(p), block, "README.md's table of %s is stale: run `%s` in the repository's root", p, UpdateCommand)
	}
	for _, s := range Settings() {
		for _, p := range []Program{Server, Function} {
			if s.For&p != 0 {
				assert.Contains(t, Table(p), "`"+s.Env+"`", "%s is documented for %s", s.Env, p)
			}
		}
	}
}

// Every setting of the function is in the template's environment for it:
// from a parameter with the function's default, described with the
// variable's name, from a resource, or set to the function's default.
// Every SPILLWAY_* variable the template sets is one the function reads.
func TestTemplateMatchesTheDeclaration(t *testing.T) {
	raw, err := os.ReadFile("../../template.yaml")
	require.NoError(t, err)
	var tpl struct {
		Parameters map[string]struct {
			Default     any    `yaml:"Default"`
			Description string `yaml:"Description"`
		} `yaml:"Parameters"`
		Resources map[string]struct {
			Properties struct {
				Environment struct {
					Variables map[string]yaml.Node `yaml:"Variables"`
				} `yaml:"Environment"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &tpl))
	fn, ok := tpl.Resources["UploadFunction"]
	require.True(t, ok, "no UploadFunction in template.yaml")
	vars := fn.Properties.Environment.Variables

	var declared []string
	for _, s := range Settings() {
		if s.For&Function == 0 {
			continue
		}
		declared = append(declared, s.Env)
		node, ok := vars[s.Env]
		if !assert.True(t, ok, "template.yaml does not set %s for the function", s.Env) {
			continue
		}
		want, err := s.Parse(s.defaultFor(Function))
		require.NoError(t, err, s.Env)
		switch {
		case node.Tag == "!Ref":
			param, isParam := tpl.Parameters[node.Value]
			if !isParam {
				_, isResource := tpl.Resources[node.Value]
				assert.True(t, isResource, "%s: !Ref %s is neither a parameter nor a resource", s.Env, node.Value)
				assert.Empty(t, s.defaultFor(Function), "%s has a default, but the template sets it from a resource", s.Env)
				continue
			}
			got, err := s.Parse(stringOf(param.Default))
			require.NoError(t, err, "the template's default for %s (parameter %s)", s.Env, node.Value)
			assert.Equal(t, want, got, "the default of parameter %s is %s's", node.Value, s.Env)
			assert.Contains(t, param.Description, s.Env, "parameter %s names the variable it sets", node.Value)
		case node.Kind == yaml.ScalarNode:
			got, err := s.Parse(node.Value)
			require.NoError(t, err, s.Env)
			assert.Equal(t, want, got, "the template sets %s to the function's default", s.Env)
		default:
			assert.Fail(t, "unexpected value in template.yaml", "%s: %s", s.Env, node.Tag)
		}
	}
	for name := range vars {
		if strings.HasPrefix(name, "SPILLWAY_") {
			assert.True(t, slices.Contains(declared, name), "template.yaml sets %s, which the function does not read", name)
		}
	}
}

func stringOf(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	out, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(out))
}

// Defaults that other packages apply when given zero are the declaration's
// too, so that a setting left alone means the same either way.
func TestDefaultsMatchThePackages(t *testing.T) {
	c, err := Parse(Server, nil, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, dirstore.DefaultFileMode, c.FileMode)
	assert.Equal(t, api.DefaultMaxConcurrentListings, c.MaxListings)
	assert.EqualValues(t, spool.DefaultThreshold, c.Threshold)
	assert.EqualValues(t, spool.DefaultMemoryBudget, c.MemoryBudget)
	assert.Equal(t, os.TempDir(), c.SpoolDir)
}

func TestFlagNamesAreDerived(t *testing.T) {
	var flags []string
	for _, s := range Settings() {
		assert.True(t, strings.HasPrefix(s.Env, "SPILLWAY_"), s.Env)
		assert.NotEmpty(t, s.For, s.Env)
		assert.NotEmpty(t, s.Usage, s.Env)
		assert.NotEmpty(t, s.Doc, s.Env)
		flags = append(flags, s.Flag())
	}
	assert.Equal(t, []string{
		"addr", "directory", "bucket", "prefix", "spool-dir", "threshold", "max-upload-size", "memory-budget",
		"overwrite", "file-mode", "case-sensitive-names", "fsync", "retention", "log-level", "read-timeout", "shutdown-timeout",
		"max-concurrent-uploads", "max-concurrent-listings", "max-open-uploads", "max-connections", "token",
		"jwt-jwks-url", "jwt-issuer", "jwt-audience", "user-prefix-claim", "user-quota", "upload-secret",
		"metrics-public", "hook-url", "hook-secret", "allow-types", "cors-origin", "function", "rie",
	}, flags)
}
