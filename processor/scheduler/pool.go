package scheduler

import (
	"context"
	"runtime"
)

// Pool is the machine's lanes: how many batches may run at once. Every
// scheduler that shares a Pool shares its lanes, so several models served by
// one process never run more batches at once than the pool allows. A lane is
// held only while a batch runs.
type Pool struct {
	slots chan struct{}
}

// NewPool returns a pool of n lanes; n <= 0 means one per core (GOMAXPROCS).
func NewPool(n int) *Pool {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &Pool{slots: make(chan struct{}, n)}
}

// Size is the number of lanes.
func (p *Pool) Size() int { return cap(p.slots) }

// Busy is the number of lanes running a batch now.
func (p *Pool) Busy() int { return len(p.slots) }

// acquire takes a lane, waiting for one to free up; false if ctx ends first.
func (p *Pool) acquire(ctx context.Context) bool {
	select {
	case p.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *Pool) release() { <-p.slots }
