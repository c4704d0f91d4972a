//go:build !linux

package dirstore

import (
	"errors"
	"os"
)

// fallocate is Linux's: elsewhere the file is made sparse at its size and
// free space is checked instead.
func fallocate(*os.File, int64) error { return errors.ErrUnsupported }
