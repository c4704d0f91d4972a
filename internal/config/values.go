package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"spillway/internal/bytesize"
)

// The flag.Values of the settings. Each binds one field of a Config; the
// same value reads a flag, an environment variable and a default, and
// prints the setting for the log, the help and the README.

type stringValue struct{ p *string }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v stringValue) Set(s string) error { *v.p = s; return nil }

type boolValue struct{ p *bool }

func (v boolValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.FormatBool(*v.p)
}

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("parse error")
	}
	*v.p = b
	return nil
}

func (v boolValue) IsBoolFlag() bool { return true }

type intValue struct{ p *int }

func (v intValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return errors.New("parse error")
	}
	*v.p = int(n)
	return nil
}

type durationValue struct{ p *time.Duration }

func (v durationValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("parse error")
	}
	*v.p = d
	return nil
}

// sizeValue is a byte count with units. zero, when set, is what a zero
// size means, printed in its place ("unlimited").
type sizeValue struct {
	p    *int64
	zero string
}

func (v sizeValue) String() string {
	if v.p == nil {
		return ""
	}
	if *v.p == 0 && v.zero != "" {
		return v.zero
	}
	return bytesize.Format(*v.p)
}

// plain is the size in bytes, as the function's environment carries it.
func (v sizeValue) plain() string { return strconv.FormatInt(*v.p, 10) }

func (v sizeValue) Set(s string) error {
	n, err := bytesize.Parse(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

// modeValue is the permission bits of stored files, in octal.
type modeValue struct{ p *fs.FileMode }

func (v modeValue) String() string {
	if v.p == nil {
		return ""
	}
	return fmt.Sprintf("%#o", uint32(*v.p))
}

func (v modeValue) Set(s string) error {
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
	*v.p = m
	return nil
}

// levelValue is a log level: debug, info, warn or error.
type levelValue struct{ p *slog.Level }

func (v levelValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v levelValue) Set(s string) error { return v.p.UnmarshalText([]byte(s)) }
