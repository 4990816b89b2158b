package syncs_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/*/stat times (100
// on every Linux the project runs on).
const clockTicks = 100

// cpuSeconds is the CPU time, user and system, this process and the
// PostgreSQL cluster behind pool have used so far. On a machine shared with
// other work a phase's wall time swings with the load, its CPU time much
// less: the benchmark reports both.
func cpuSeconds(tb testing.TB, pool *pgxpool.Pool) (self, server float64) {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	self = float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	var backend int
	if err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		tb.Fatal(err)
	}
	postmaster, _, ok := procTimes(backend, false)
	if !ok {
		return self, 0 // another machine's server: not measured
	}
	// The postmaster's own time and its reaped children's, plus every
	// live child's: backends that ended are in the first.
	_, ticks, _ := procTimes(postmaster, true)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, t, ok := procTimes(pid, false); ok && ppid == postmaster {
			ticks += t
		}
	}
	return self, float64(ticks) / clockTicks
}

// procTimes reads a process's parent and its CPU ticks (with its reaped
// children's when children is set) from /proc/pid/stat.
func procTimes(pid int, children bool) (ppid int, ticks int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces: fields start after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 15 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	n := 2 // utime, stime
	if children {
		n = 4 // cutime, cstime
	}
	for _, v := range f[11 : 11+n] {
		t, _ := strconv.ParseInt(v, 10, 64)
		ticks += t
	}
	return ppid, ticks, true
}
