//go:build race

package spool_test

// raceEnabled: the race detector makes sync.Pool drop a share of what is put
// back, so allocation figures mean nothing under it.
const raceEnabled = true
