package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"spillway/internal/testservers"
)

// machineInfo is what the report says about where it ran.
type machineInfo struct {
	nproc      int
	cpu        string
	kernel     string
	goVersion  string
	memTotal   string
	fs         string        // filesystem of the temporary directory
	createCost time.Duration // create + write 1 KiB + close, per file
	// createCostAfter is the same after the uploads.
	createCostAfter time.Duration
	commit          string
}

func probeMachine(dir string) machineInfo {
	m := machineInfo{
		nproc:     runtime.NumCPU(),
		cpu:       procField("/proc/cpuinfo", "model name"),
		goVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		memTotal:  memTotal(),
		fs:        filesystemOf(dir),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	m.createCost = fileCreateCost(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if root, err := moduleRoot(ctx); err == nil {
		if out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
			m.commit = strings.TrimSpace(string(out))
		}
	}
	return m
}

// loadAvg is /proc/loadavg's 1-, 5- and 15-minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// procField returns the value of the first "key : value" line of a /proc
// file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "unknown"
}

func memTotal() string {
	kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

// filesystemOf names the mount holding dir, from /proc/self/mountinfo.
func filesystemOf(dir string) string {
	abs, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "unknown"
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	best, bestLen := "unknown", -1
	s := bufio.NewScanner(f)
	for s.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source superopts
		pre, post, ok := strings.Cut(s.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 2 {
			continue
		}
		mp := fields[4]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > bestLen {
			best, bestLen = fmt.Sprintf("%s on %s, mounted at %s (%s)", tail[0], tail[1], mp, fields[5]), len(mp)
		}
	}
	return best
}

// fileCreateCost times creating, writing 1 KiB to and closing new files,
// the floor of a small upload on this filesystem.
func fileCreateCost(dir string) time.Duration {
	d, err := os.MkdirTemp(dir, "create-")
	if err != nil {
		return 0
	}
	defer os.RemoveAll(d)
	const n = 500
	buf := make([]byte, 1<<10)
	start := time.Now()
	for i := range n {
		f, err := os.OpenFile(filepath.Join(d, strconv.Itoa(i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return 0
		}
		f.Write(buf)
		f.Close()
	}
	return time.Since(start) / n
}

// procCPU is a process's user + system CPU time so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its closing one. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const userHZ = 100 // USER_HZ, 100 on every Linux architecture Go supports
	return time.Duration(ut+st) * time.Second / userHZ
}

// selfCPU is this process's user + system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procTree is roots and all their descendants, from /proc's children lists.
func procTree(roots []int) []int {
	var all []int
	seen := map[int]bool{}
	queue := slices.Clone(roots)
	// Bounded: a process tree of a server has a handful of processes.
	for len(queue) > 0 && len(all) < 1000 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		all = append(all, pid)
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					queue = append(queue, c)
				}
			}
		}
	}
	return all
}

// treeCPU is the user + system CPU time of the processes so far.
func treeCPU(pids []int) time.Duration {
	var d time.Duration
	for _, pid := range pids {
		d += procCPU(pid)
	}
	return d
}

// sumStatus adds up a /proc/PID/status size field of the processes: for a
// server of several processes, the sum overstates its peak by the pages
// they share, and never understates it.
func sumStatus(pids []int, field string) int64 {
	var n int64
	for _, pid := range pids {
		v, _ := testservers.ProcStatusBytes(pid, field)
		n += v
	}
	return n
}
