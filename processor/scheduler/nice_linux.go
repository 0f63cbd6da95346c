package scheduler

import "golang.org/x/sys/unix"

// lowerThreadPriority adds inc to the calling OS thread's nice value (on
// Linux, PRIO_PROCESS with a thread id applies to that thread alone).
// Raising one's own nice value needs no privilege; a failure leaves the
// thread at the process's priority, which is only slower to answer under
// load, so it is ignored.
func lowerThreadPriority(inc int) {
	tid := unix.Gettid()
	cur, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return
	}
	// The raw syscall returns 20 - nice.
	_ = unix.Setpriority(unix.PRIO_PROCESS, tid, min(20-cur+inc, 19))
}
