package dirstore

// OpenPortable opens a Store as Open does, but on the portable fallbacks
// that systems without Linux's fast paths use, so that Linux tests them too.
func OpenPortable(dir string, opts Options) (*Store, int, error) {
	return open(dir, opts, portableSys{})
}
