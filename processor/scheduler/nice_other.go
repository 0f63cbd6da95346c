//go:build !linux

package scheduler

// lowerThreadPriority is a no-op outside Linux: lanes run at the process's priority.
func lowerThreadPriority(int) {}
