package jobstore

import (
	"fmt"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// Clusters are the connected components of the pairs: a chain is one
// cluster, ids and pairs sorted, clusters ordered by their first id.
func TestClusters(t *testing.T) {
	got := Clusters([]contracts.DedupePair{{A: "x", B: "y", Score: 0.9}, {A: "c", B: "d", Score: 0.95}, {A: "b", B: "c", Score: 0.91}, {A: "a", B: "b", Score: 0.92}})
	if s := fmt.Sprint(got); s != "[{[a b c d] [{a b 0.92} {b c 0.91} {c d 0.95}]} {[x y] [{x y 0.9}]}]" {
		t.Errorf("clusters: %s", s)
	}
	if got := Clusters(nil); len(got) != 0 {
		t.Errorf("no pairs: %v", got)
	}
}

func TestPlanChunks(t *testing.T) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	if got := PlanChunks(ids, 512, 1<<20, func(string) int { return 100 }); fmt.Sprint(got) != "[0 512]" {
		t.Errorf("by count: %v", got)
	}
	if got := PlanChunks(ids, 512, 30_000, func(string) int { return 100 }); len(got) != 4 || got[1] != 300 {
		t.Errorf("by bytes: %v", got)
	}
	if got := PlanChunks(nil, 512, 1000, func(string) int { return 1 }); len(got) != 0 {
		t.Errorf("no ids: %v", got)
	}
}
