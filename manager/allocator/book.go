package allocator

import (
	"net/netip"
	"sync"
)

// Book holds what the leader has allocated but not yet committed, so two
// writes in flight (a service create and the orchestrator placing tasks)
// never pick the same address, subnet, VNI or port. Allocations are made
// inside Do, which serializes them; the values stay held until the
// returned release is called, after the Raft write has been applied (or
// failed), when the store itself shows them.
type Book struct {
	mu      sync.Mutex
	addrs   map[string]map[netip.Addr]int // network ID → address → holders
	subnets map[netip.Prefix]int
	vnis    map[uint32]int
	ports   map[string]int
	// last is the address handed out last per network ID: the next
	// search starts after it.
	last map[string]netip.Addr
}

// Held is the view of a Book inside Do: what is held, and holding more.
type Held struct {
	b     *Book
	taken []func()
}

// Do runs fn with the book locked. What fn holds stays held until release.
func (b *Book) Do(fn func(h *Held) error) (release func(), err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.addrs == nil {
		b.addrs, b.subnets, b.vnis, b.ports = map[string]map[netip.Addr]int{}, map[netip.Prefix]int{}, map[uint32]int{}, map[string]int{}
		b.last = map[string]netip.Addr{}
	}
	h := &Held{b: b}
	if err := fn(h); err != nil {
		for _, f := range h.taken {
			f()
		}
		return func() {}, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			for _, f := range h.taken {
				f()
			}
		})
	}, nil
}

// Addr holds addr on a network.
func (h *Held) Addr(network string, addr netip.Addr) {
	m := h.b.addrs[network]
	if m == nil {
		m = map[netip.Addr]int{}
		h.b.addrs[network] = m
	}
	m[addr]++
	b := h.b
	h.taken = append(h.taken, func() {
		if m[addr]--; m[addr] <= 0 {
			delete(m, addr)
		}
		if len(m) == 0 {
			delete(b.addrs, network)
		}
	})
}

// Subnet holds a subnet.
func (h *Held) Subnet(p netip.Prefix) {
	h.b.subnets[p]++
	b := h.b
	h.taken = append(h.taken, func() {
		if b.subnets[p]--; b.subnets[p] <= 0 {
			delete(b.subnets, p)
		}
	})
}

// VNI holds a VXLAN identifier.
func (h *Held) VNI(v uint32) {
	h.b.vnis[v]++
	b := h.b
	h.taken = append(h.taken, func() {
		if b.vnis[v]--; b.vnis[v] <= 0 {
			delete(b.vnis, v)
		}
	})
}

// Port holds a published port ("30000/tcp").
func (h *Held) Port(key string) {
	h.b.ports[key]++
	b := h.b
	h.taken = append(h.taken, func() {
		if b.ports[key]--; b.ports[key] <= 0 {
			delete(b.ports, key)
		}
	})
}

// NextAddr takes and holds the first address of a network that is not in
// use (inUse: the store says so) nor held, starting after the one this
// book handed out last there and going round the subnet. Going round
// finds a free address in about one step however many are in use (a scan
// from the start would step over all of them on every allocation), and
// does not hand an address just given back straight to a new holder,
// whose peers may still have the old one's neighbour entries and
// connections.
func (h *Held) NextAddr(network string, subnet netip.Prefix, gateway netip.Addr, inUse func(netip.Addr) bool) (netip.Addr, error) {
	a, err := nextAddrAfter(subnet, gateway, h.b.last[network], func(a netip.Addr) bool { return h.AddrHeld(network, a) || inUse(a) })
	if err != nil {
		return a, err
	}
	h.Addr(network, a)
	h.b.last[network] = a
	return a, nil
}

// AddrHeld reports whether an address is held on a network.
func (h *Held) AddrHeld(network string, a netip.Addr) bool { return h.b.addrs[network][a] > 0 }

// Subnets lists the held subnets.
func (h *Held) Subnets() []netip.Prefix {
	var out []netip.Prefix
	for p := range h.b.subnets {
		out = append(out, p)
	}
	return out
}

// AddVNIs adds the held VNIs to used.
func (h *Held) AddVNIs(used map[uint32]bool) {
	for v := range h.b.vnis {
		used[v] = true
	}
}

// PortHeld reports whether a published port is held.
func (h *Held) PortHeld(key string) bool { return h.b.ports[key] > 0 }
