package scheduler

import (
	"context"
	"runtime"
	"time"
)

// Pool is the machine's lanes: how many batches may run at once. Every
// scheduler that shares a Pool shares its lanes, so several models served by
// one process never run more batches at once than the pool allows. A lane is
// held only while a batch runs.
//
// Batches run on the pool's own OS threads, at a lower CPU priority than the
// rest of the process (nice +LaneNice on Linux): when the cores are full of
// inference, the intake, admission and the bridge still get a core at once,
// so a refusal or a cache hit is answered in milliseconds instead of waiting
// for the scheduler's time slice. The lanes lose nothing when nothing else
// needs the cores.
type Pool struct {
	slots chan struct{}
	work  chan func() // taken by an idle lane thread
}

// LaneNice is how much lower than the process's the lane threads' CPU
// priority is (Linux nice increment; elsewhere lanes run at the process's).
const LaneNice = 5

// laneIdle is how long an idle lane thread waits for work before it exits.
const laneIdle = 10 * time.Second

// NewPool returns a pool of n lanes; n <= 0 means one per core (GOMAXPROCS).
func NewPool(n int) *Pool {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &Pool{slots: make(chan struct{}, n), work: make(chan func())}
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

// exec runs fn on a lane thread and returns when it has. The caller holds a
// lane, so at most Size threads run work at once; an idle one is reused (the
// ONNX Runtime's per-thread state stays warm) and exits after laneIdle.
func (p *Pool) exec(fn func()) {
	done := make(chan struct{})
	job := func() { defer close(done); fn() }
	select {
	case p.work <- job:
	default:
		go p.lane(job)
	}
	<-done
}

// lane is one lane thread: locked to its OS thread, which exits with it.
func (p *Pool) lane(job func()) {
	runtime.LockOSThread() // never unlocked: the lowered thread ends with the goroutine
	lowerThreadPriority(LaneNice)
	job()
	t := time.NewTimer(laneIdle)
	defer t.Stop()
	for {
		select {
		case job := <-p.work:
			job()
			t.Reset(laneIdle)
		case <-t.C:
			return
		}
	}
}
