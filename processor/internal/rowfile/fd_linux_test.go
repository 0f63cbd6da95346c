package rowfile

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// fdPath is what /proc shows for the file's descriptor.
func fdPath(fd uintptr) string {
	p, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	return p
}

// checkOpen checks that the open file has no name left (no links,
// "(deleted)" in /proc) and returns its descriptor.
func checkOpen(t *testing.T, x *File) uintptr {
	t.Helper()
	fi, err := x.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Nlink != 0 {
		t.Errorf("open file has %d links, want 0", st.Nlink)
	}
	fd := x.f.Fd()
	if p := fdPath(fd); !strings.HasSuffix(p, "(deleted)") {
		t.Errorf("descriptor %d is %q, want a deleted file", fd, p)
	}
	return fd
}

// checkClosed checks that descriptor fd no longer refers to the file.
func checkClosed(t *testing.T, fd uintptr) {
	t.Helper()
	if p := fdPath(fd); strings.Contains(p, "simmatch-rows-") {
		t.Errorf("descriptor %d still refers to %q after Close", fd, p)
	}
}
