package config

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"spillway/internal/bytesize"
	"spillway/internal/sniff"
)

// The flag.Values of the settings, each a pointer to one field of a
// Config, as the flag package's own are. The same value reads a flag, an
// environment variable and a default, and prints the setting for the log,
// the help and the README. typeName names the value in the help.

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (*stringValue) typeName() string     { return "string" }

type boolValue bool

func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("parse error")
	}
	*v = boolValue(b)
	return nil
}
func (*boolValue) IsBoolFlag() bool { return true }
func (*boolValue) typeName() string { return "" }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return errors.New("parse error")
	}
	*v = intValue(n)
	return nil
}
func (*intValue) typeName() string { return "int" }

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("parse error")
	}
	*v = durationValue(d)
	return nil
}
func (*durationValue) typeName() string { return "duration" }

// retentionValue is a duration that also takes whole days, "30d", the
// unit S3's lifecycle rules count in, and prints whole days that way.
type retentionValue time.Duration

const day = 24 * time.Hour

func (v *retentionValue) String() string {
	d := time.Duration(*v)
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

func (v *retentionValue) Set(s string) error {
	d, err := parseRetention(s)
	if err != nil {
		return err
	}
	*v = retentionValue(d)
	return nil
}

func (*retentionValue) typeName() string { return "duration" }

// plain leaves a zero retention out of the function's environment, so
// that the function's own default, none, applies.
func (v *retentionValue) plain() string {
	if *v == 0 {
		return ""
	}
	return v.String()
}

// parseRetention parses a retention: whole days such as "30d", a Go
// duration such as "720h", or "0" or "" for none.
func parseRetention(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err != nil || days < 0 || days > math.MaxInt64/int64(day) {
			return 0, errors.New("parse error: want whole days such as 30d, or a duration such as 720h")
		}
		d = time.Duration(days) * day
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, errors.New("parse error: want whole days such as 30d, or a duration such as 720h")
		}
	}
	if d < 0 {
		return 0, errors.New("a retention cannot be negative")
	}
	return d, nil
}

// sizeValue is a byte count with units.
type sizeValue int64

func (v *sizeValue) String() string { return bytesize.Format(int64(*v)) }
func (v *sizeValue) Set(s string) error {
	n, err := bytesize.Parse(s)
	if err != nil {
		return err
	}
	*v = sizeValue(n)
	return nil
}
func (*sizeValue) typeName() string { return "size" }

// plain is the size in bytes, as the function's environment carries it.
func (v *sizeValue) plain() string { return strconv.FormatInt(int64(*v), 10) }

// limitValue is a size limit, where zero means none.
type limitValue int64

func (v *limitValue) String() string {
	if *v == 0 {
		return "unlimited"
	}
	return (*sizeValue)(v).String()
}
func (v *limitValue) Set(s string) error { return (*sizeValue)(v).Set(s) }
func (*limitValue) typeName() string     { return "size" }
func (v *limitValue) plain() string      { return (*sizeValue)(v).plain() }

// modeValue is the permission bits of stored files, in octal.
type modeValue fs.FileMode

func (v *modeValue) String() string { return fmt.Sprintf("%#o", uint32(*v)) }
func (v *modeValue) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil {
		return errors.New("not an octal mode such as 0644")
	}
	m := fs.FileMode(n)
	switch {
	case m&^fs.ModePerm != 0:
		return errors.New("only permission bits (0777) may be set")
	case m&0o400 == 0:
		return errors.New("the owner must be able to read stored files")
	}
	*v = modeValue(m)
	return nil
}
func (*modeValue) typeName() string { return "mode" }

// hookURLValue is an absolute http or https URL.
type hookURLValue string

func (v *hookURLValue) String() string { return string(*v) }
func (v *hookURLValue) Set(s string) error {
	if s != "" {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("not an absolute http or https URL")
		}
	}
	*v = hookURLValue(s)
	return nil
}
func (*hookURLValue) typeName() string { return "url" }

// typesValue is a list of content types, as sniff.Parse reads it.
type typesValue sniff.Rules

func (v *typesValue) String() string { return sniff.Rules(*v).String() }
func (v *typesValue) Set(s string) error {
	r, err := sniff.Parse(s)
	if err != nil {
		return err
	}
	*v = typesValue(r)
	return nil
}
func (*typesValue) typeName() string { return "types" }

// levelValue is a log level: debug, info, warn or error.
type levelValue slog.Level

func (v *levelValue) String() string     { return slog.Level(*v).String() }
func (v *levelValue) Set(s string) error { return (*slog.Level)(v).UnmarshalText([]byte(s)) }
func (*levelValue) typeName() string     { return "level" }

// printDefaults is flag.PrintDefaults with the values' own type names
// (flag names only its own types, and calls every other one "value").
func printDefaults(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		var b strings.Builder
		fmt.Fprintf(&b, "  -%s", f.Name)
		_, usage := flag.UnquoteUsage(f)
		if t, ok := f.Value.(interface{ typeName() string }); ok && t.typeName() != "" {
			b.WriteString(" " + t.typeName())
		}
		b.WriteString("\n    \t")
		b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
		zero := reflect.New(reflect.TypeOf(f.Value).Elem()).Interface().(flag.Value).String()
		if f.DefValue != zero {
			if _, ok := f.Value.(*stringValue); ok {
				fmt.Fprintf(&b, " (default %q)", f.DefValue)
			} else {
				fmt.Fprintf(&b, " (default %v)", f.DefValue)
			}
		}
		fmt.Fprintln(fs.Output(), b.String())
	})
}
