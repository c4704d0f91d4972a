package main

import (
	"fmt"
	"io"

	"spillway/internal/buildinfo"
)

// printVersion prints the version line to w when args ask for it, and
// reports whether they did.
func printVersion(args []string, w io.Writer) bool {
	if !buildinfo.Requested(args) {
		return false
	}
	fmt.Fprintln(w, "spillway", buildinfo.Read())
	return true
}
