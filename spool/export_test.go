package spool

// BodyPath returns the name of b's temp file, or "" when it has none, for
// the tests of package spool_test.
func BodyPath(b *Body) string { return b.name() }
