// Package bytesize parses and prints byte counts such as "2MiB", "10GB" and
// "512k", for flags and environment variables.
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

var units = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// Parse reads a non-negative whole number of bytes with an optional unit:
// IEC units (KiB, MiB, GiB, TiB) and single letters (k, m, g, t) are powers
// of 1024, SI units (kB, MB, GB, TB) powers of 1000. Case and a space before
// the unit do not matter.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && '0' <= t[i] && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("bytesize: %q: want a whole number of bytes, optionally with a unit such as KiB, MB or GiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bytesize: %q: %w", s, errors.Unwrap(err))
	}
	unit, ok := units[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("bytesize: %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB or k, m, g, t)", s, strings.TrimSpace(t[i:]))
	}
	if n > math.MaxInt64/unit {
		return 0, fmt.Errorf("bytesize: %q: too large", s)
	}
	return n * unit, nil
}

// Format prints n in the largest IEC unit that divides it exactly, so that
// Parse(Format(n)) == n.
func Format(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
