package jobstore

import (
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

func TestSplitChunks(t *testing.T) {
	short := make([]string, 300)
	for i := range short {
		short[i] = "q"
	}
	long := []string{"a", strings.Repeat("x", 400), "b", strings.Repeat("y", 400), "c"}
	tests := []struct {
		name    string
		queries []string
		size    int
		matches int
		budget  int
		want    []int
	}{
		{"by count", short, 128, 1, 1 << 20, []int{0, 128, 256}},
		{"by result size", short, 128, 100, 30_000, []int{0, 9, 18, 27, 36, 45, 54, 63, 72, 81, 90, 99, 108, 117, 126, 135, 144, 153, 162, 171, 180, 189, 198, 207, 216, 225, 234, 243, 252, 261, 270, 279, 288, 297}},
		{"by query size", long, 128, 1, 1000, []int{0, 2, 4}},
		{"one query", []string{"q"}, 128, 1, 1000, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := splitChunks(tt.queries, tt.size, 30*tt.matches, tt.budget)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
			m := contracts.JobMeta{Offsets: got, Total: len(tt.queries)}
			sum := 0
			for i := range got {
				sum += m.ChunkLen(i)
			}
			if sum != len(tt.queries) {
				t.Errorf("chunk lengths add up to %d, want %d", sum, len(tt.queries))
			}
		})
	}
}
