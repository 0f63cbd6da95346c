//go:build !linux

package rowfile

import "testing"

// checkOpen has no /proc to look at outside Linux.
func checkOpen(*testing.T, *File) uintptr { return 0 }

// checkClosed has no /proc to look at outside Linux.
func checkClosed(*testing.T, uintptr) {}
