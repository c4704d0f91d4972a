// Package writeback starts the kernel's writeback of a file's dirty pages
// as they are written, for files that will be fsynced: a large file
// otherwise piles up dirty pages until the kernel throttles the writer
// hard (balance_dirty_pages), and leaves all of them for the fsync to wait
// for, serially with the next network reads.
package writeback

// Behind is how far a file's dirty pages may run ahead of the writeback
// started for them.
const Behind = 8 << 20
