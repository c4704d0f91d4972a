package spool

import "sync/atomic"

// Stats is a snapshot of a Spooler's counters since it was created.
type Stats struct {
	MemoryBodies    int64 // bodies spooled to memory
	DiskBodies      int64 // bodies spooled to disk
	MemoryBytes     int64 // bytes of bodies spooled to memory
	DiskBytes       int64 // bytes of bodies spooled to disk
	Errors          int64 // Spool calls that failed
	CleanupFailures int64 // temp files that could not be closed or removed
	OpenFiles       int64 // temp files held now, a Batch's closed ones and its lock included
	MemoryInUse     int64 // bytes of the memory budget held now
}

type counters struct {
	memoryBodies, diskBodies atomic.Int64
	memoryBytes, diskBytes   atomic.Int64
	errors, cleanupFailures  atomic.Int64
	openFiles                atomic.Int64
}

func (c *counters) record(b *Body) {
	if b.Location() == Disk {
		c.diskBodies.Add(1)
		c.diskBytes.Add(b.size)
		return
	}
	c.memoryBodies.Add(1)
	c.memoryBytes.Add(b.size)
}

// Stats returns the current counters.
func (s *Spooler) Stats() Stats {
	return Stats{
		MemoryBodies:    s.stats.memoryBodies.Load(),
		DiskBodies:      s.stats.diskBodies.Load(),
		MemoryBytes:     s.stats.memoryBytes.Load(),
		DiskBytes:       s.stats.diskBytes.Load(),
		Errors:          s.stats.errors.Load(),
		CleanupFailures: s.stats.cleanupFailures.Load(),
		OpenFiles:       s.stats.openFiles.Load(),
		MemoryInUse:     s.inUse.Load(),
	}
}
