//go:build !linux

package dirstore

import (
	"errors"
	"os"
)

// reservesSpace is false: parts take their space as they are written.
const reservesSpace = false

// fallocate is Linux's: elsewhere the file is made sparse at its size and
// free space is checked instead.
func fallocate(*os.File, int64) error { return errors.ErrUnsupported }
