package harness

import (
	"net"
	"strconv"
	"testing"
)

// Ports come from below the ephemeral range and are never handed out
// twice by one process.
func TestFreePortBelowEphemeralRangeAndUnique(t *testing.T) {
	floor := ephemeralFloor()
	seen := map[int]bool{}
	for i := range 300 {
		p := FreePort(t)
		if i%2 == 1 {
			_, port, err := net.SplitHostPort(FreeAddr(t))
			if err != nil {
				t.Fatal(err)
			}
			if p, err = strconv.Atoi(port); err != nil {
				t.Fatal(err)
			}
		}
		if p < lowestPort || p >= floor {
			t.Fatalf("port %d outside [%d, %d)", p, lowestPort, floor)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
