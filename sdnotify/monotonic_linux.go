package sdnotify

import (
	"syscall"
	"unsafe"
)

// clockMonotonic is CLOCK_MONOTONIC from <time.h>, the clock systemd compares
// MONOTONIC_USEC against.
const clockMonotonic = 1

// monotonicUsec reads CLOCK_MONOTONIC in microseconds. The time package hides the
// absolute monotonic value (it only offers differences), so we ask the kernel.
func monotonicUsec() (int64, bool) {
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, false
	}
	return int64(ts.Sec)*1e6 + int64(ts.Nsec)/1e3, true
}
