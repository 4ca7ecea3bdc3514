package actors

import (
	"slices"
	"testing"
)

func TestWheel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		slots   int
		due     []int64 // one job per entry, named by index
		remove  []int   // indexes removed before advancing
		advance []int64 // successive advance targets
		want    [][]int // indexes fired at each advance, in any order
	}{
		{"fires when due", 8, []int64{3, 5}, nil, []int64{2, 3, 5}, [][]int{nil, {0}, {1}}},
		{"beyond one turn waits for its turn", 4, []int64{2, 6, 10}, nil, []int64{2, 5, 6, 10}, [][]int{{0}, nil, {1}, {2}}},
		{"removed never fires", 8, []int64{1, 1, 2}, []int{1}, []int64{4}, [][]int{{0, 2}}},
		{"past deadline fires next tick", 8, []int64{-5}, nil, []int64{1}, [][]int{{0}}},
		{"long stall fires everything due", 4, []int64{1, 3, 7, 50}, nil, []int64{40, 100}, [][]int{{0, 1, 2}, {3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWheel(tt.slots, 0)
			jobs := make([]*pendingJob, len(tt.due))
			index := map[*pendingJob]int{}
			for i, d := range tt.due {
				jobs[i] = &pendingJob{due: d}
				index[jobs[i]] = i
				w.add(jobs[i])
			}
			for _, i := range tt.remove {
				w.remove(jobs[i])
			}
			for k, now := range tt.advance {
				var fired []int
				w.advance(now, func(p *pendingJob) { fired = append(fired, index[p]) })
				slices.Sort(fired)
				if !slices.Equal(fired, tt.want[k]) {
					t.Fatalf("advance(%d) fired %v, want %v", now, fired, tt.want[k])
				}
			}
		})
	}
}
