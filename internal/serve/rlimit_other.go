//go:build !unix

package serve

import "errors"

// raiseOpenFileLimit has no open-file limit to raise here.
func raiseOpenFileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.ErrUnsupported
}
