// Command readme rewrites the settings tables of the README (README.md in
// the current directory, or the file named as its argument) from the
// declaration in internal/config. Run it from the repository's root:
//
//	go run ./internal/config/cmd/readme
package main

import (
	"fmt"
	"os"

	"spillway/internal/config"
)

func main() {
	path := "README.md"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	if err := update(path); err != nil {
		fmt.Fprintln(os.Stderr, "readme:", err)
		os.Exit(1)
	}
}

func update(path string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	updated, err := config.UpdateREADME(string(old))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if updated == string(old) {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(updated), fi.Mode().Perm())
}
