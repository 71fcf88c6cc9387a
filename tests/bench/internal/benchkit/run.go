package benchkit

import (
	"fmt"
	"sort"
	"strings"
)

// Run is the body of every benchmark program: it gives run a fresh TB
// (closed, with everything it started, before the result is printed)
// and prints the result as JSON or through summary.
func Run[R any](verbose, asJSON bool, run func(*TB) R, summary func(R)) {
	tb := NewTB(verbose)
	defer tb.Close()
	res := run(tb)
	tb.Close()
	if asJSON {
		PrintJSON(res)
		return
	}
	summary(res)
}

// Counts renders a count per key, sorted ("Unavailable=3 Aborted=1"),
// or empty when there are none.
func Counts(m map[string]int, empty string) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	parts := make([]string, 0, len(ks))
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(parts) == 0 {
		return empty
	}
	return strings.Join(parts, " ")
}
