package repotest

import "syscall"

// ProcessCPU is this process's user plus system CPU time in nanoseconds,
// for benchmarks that report CPU per operation apart from the PostgreSQL
// they drive (its own processes).
func ProcessCPU() int64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return u.Utime.Nano() + u.Stime.Nano()
}
