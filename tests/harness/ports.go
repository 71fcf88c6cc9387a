package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports handed to daemons come from below the kernel's ephemeral range.
// A port from the ephemeral range (what listening on :0 gives) can be
// taken a moment later as the local end of some outgoing connection,
// which then holds it for as long as the connection lives: a worker's
// manager address, bound only when it is promoted, was lost that way.
const lowestPort = 10000

var ports struct {
	sync.Mutex
	given map[int]bool
	ceil  int // first port of the ephemeral range
}

// ephemeralFloor reads the first port the kernel picks for outgoing
// connections.
func ephemeralFloor() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= lowestPort+1000 {
		return 32768
	}
	return n
}

// FreePort returns a loopback port, below the ephemeral range, that was
// free for TCP a moment ago and that this process has not handed out
// before.
func FreePort(t TB) int {
	t.Helper()
	p, err := freePort(false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FreeAddr returns a loopback address whose port is free for both tcp and
// udp (gossip needs both).
func FreeAddr(t TB) string {
	t.Helper()
	p, err := freePort(true)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

func freePort(udp bool) (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
		ports.ceil = ephemeralFloor()
	}
	for range 200 {
		p := lowestPort + rand.IntN(ports.ceil-lowestPort)
		if ports.given[p] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		if udp {
			u, err := net.ListenPacket("udp", addr)
			if err != nil {
				continue
			}
			u.Close()
		}
		ports.given[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no loopback port below %d free for tcp%s after 200 tries", ports.ceil, map[bool]string{true: " and udp"}[udp])
}
