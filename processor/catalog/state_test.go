package catalog

import (
	"slices"
	"testing"
)

// State names the followed catalogs still starting or behind the stream's
// last sequence at the start of following, and says when the stored
// catalogs were listed: what the bridge's /ready waits for.
func TestStateNamesCatalogsNotCaughtUp(t *testing.T) {
	done := make(chan struct{})
	close(done)
	follower := func(applied, until uint64) *followed {
		f := &followed{ready: done, seen: NewIndex(0), until: until}
		if applied > 0 {
			f.seen.Skip(applied)
		}
		return f
	}
	s := &Service{cats: map[string]*followed{
		"starting": {ready: make(chan struct{})},
		"behind":   follower(3, 5),
		"caughtup": follower(5, 5),
		"empty":    follower(0, 0),
	}}
	st := s.State()
	if st.Listed || st.Following != 4 || !slices.Equal(st.Loading, []string{"behind", "starting"}) {
		t.Fatalf("state %+v, want not listed, 4 followed, behind and starting loading", st)
	}
	s.cats["behind"].seen.Skip(5)
	close(s.cats["starting"].ready)
	s.cats["starting"].seen = NewIndex(0)
	s.listed.Store(true)
	if st := s.State(); !st.Listed || len(st.Loading) != 0 {
		t.Fatalf("state %+v, want listed and nothing loading", st)
	}
}
