package benchkit

import (
	"slices"
	"time"
)

// Median is the middle of ds, or the mean of the two middle values when
// there is an even number of them (as hyperfine computes it). It does not
// change ds.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
