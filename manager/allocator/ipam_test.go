package allocator

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func TestParsePools(t *testing.T) {
	for _, tc := range []struct {
		cidrs []string
		bits  int
		err   string
	}{
		{nil, 0, ""},
		{[]string{"10.0.0.0/8", "192.168.0.0/16"}, 24, ""},
		{[]string{"10.0.0.0/8"}, 7, "between /8 and /29"},
		{[]string{"10.0.0.0/8"}, 30, "between /8 and /29"},
		{[]string{"ten"}, 24, `"ten": not an IPv4 CIDR`},
		{[]string{"fd00::/8"}, 24, "not an IPv4 CIDR"},
		{[]string{"10.0.0.1/8"}, 24, "did you mean 10.0.0.0/8"},
		{[]string{"10.0.0.0/26"}, 24, "smaller than the subnets (/24)"},
	} {
		p, err := ParsePools(tc.cidrs, tc.bits)
		if tc.err == "" {
			if err != nil {
				t.Errorf("ParsePools(%v, %d) = %v", tc.cidrs, tc.bits, err)
			}
			if tc.cidrs == nil && (len(p.Prefixes) != 1 || p.Prefixes[0] != pfx(DefaultPool) || p.SubnetBits != DefaultSubnetBits) {
				t.Errorf("default pools = %+v", p)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParsePools(%v, %d) = %v; want an error with %q", tc.cidrs, tc.bits, err, tc.err)
		}
	}
}

func TestNextSubnet(t *testing.T) {
	two, _ := ParsePools([]string{"192.168.0.0/23", "10.0.0.0/8"}, 24)
	def, _ := ParsePools(nil, 0)
	for _, tc := range []struct {
		name string
		p    Pools
		used []string
		want string
	}{
		{"empty", def, nil, "10.0.0.0/24"},
		{"first used", def, []string{"10.0.0.0/24"}, "10.0.1.0/24"},
		{"a hole", def, []string{"10.0.0.0/24", "10.0.2.0/24"}, "10.0.1.0/24"},
		{"a smaller user subnet", def, []string{"10.0.0.128/28"}, "10.0.1.0/24"},
		{"a larger user subnet", def, []string{"10.0.0.0/16"}, "10.1.0.0/24"},
		{"several large ones", def, []string{"10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/24"}, "10.2.1.0/24"},
		{"outside the pool", def, []string{"172.16.0.0/12"}, "10.0.0.0/24"},
		{"first pool full", two, []string{"192.168.0.0/24", "192.168.1.0/24"}, "10.0.0.0/24"},
		{"first pool covered", two, []string{"192.168.0.0/16"}, "10.0.0.0/24"},
	} {
		var used []netip.Prefix
		for _, u := range tc.used {
			used = append(used, pfx(u))
		}
		got, err := tc.p.NextSubnet(used)
		if err != nil || got != pfx(tc.want) {
			t.Errorf("%s: NextSubnet = %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	small, _ := ParsePools([]string{"192.168.7.0/24"}, 24)
	if _, err := small.NextSubnet([]netip.Prefix{pfx("192.168.7.0/25")}); !errors.Is(err, ErrExhausted) {
		t.Errorf("full pool: %v; want ErrExhausted", err)
	}
}

// Against a brute force over a small pool: the subnet found is the lowest
// one inside the pool that overlaps nothing used, or none exists.
func TestNextSubnetProperty(t *testing.T) {
	p, _ := ParsePools([]string{"10.8.0.0/16"}, 24)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		var used []netip.Prefix
		for j := r.IntN(40); j > 0; j-- {
			bits := 14 + r.IntN(15)
			a := fromV4(v4(addr("10.0.0.0")) + uint32(r.IntN(1<<20))<<4)
			used = append(used, netip.PrefixFrom(a, bits).Masked())
		}
		var want netip.Prefix
		for k := 0; k < 256; k++ {
			c := netip.PrefixFrom(fromV4(v4(addr("10.8.0.0"))+uint32(k)<<8), 24)
			if !overlapsAny(c, used) {
				want = c
				break
			}
		}
		got, err := p.NextSubnet(used)
		if !want.IsValid() {
			if !errors.Is(err, ErrExhausted) {
				t.Fatalf("used %v: got %v, %v; want exhausted", used, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Fatalf("used %v: got %v, %v; want %v", used, got, err, want)
		}
	}
}

// nextAddr is the first free address from the start of the subnet.
func nextAddr(s netip.Prefix, gw netip.Addr, used map[netip.Addr]bool) (netip.Addr, error) {
	return nextAddrAfter(s, gw, netip.Addr{}, func(a netip.Addr) bool { return used[a] })
}

func TestNextAddr(t *testing.T) {
	s := pfx("10.0.3.0/24")
	gw := Gateway(s)
	if gw != addr("10.0.3.1") {
		t.Fatalf("Gateway = %v", gw)
	}
	used := map[netip.Addr]bool{}
	got, err := nextAddr(s, gw, used)
	if err != nil || got != addr("10.0.3.2") {
		t.Fatalf("first = %v, %v", got, err)
	}
	used[addr("10.0.3.2")] = true
	used[addr("10.0.3.4")] = true
	if got, _ := nextAddr(s, gw, used); got != addr("10.0.3.3") {
		t.Errorf("with .2 and .4 used: %v; want .3", got)
	}
	// A /30 has one address left for tasks: not the network, gateway or
	// broadcast address.
	tiny := pfx("10.0.9.0/30")
	got, err = nextAddr(tiny, Gateway(tiny), nil)
	if err != nil || got != addr("10.0.9.2") {
		t.Errorf("/30 = %v, %v; want 10.0.9.2", got, err)
	}
	if _, err := nextAddr(tiny, Gateway(tiny), map[netip.Addr]bool{addr("10.0.9.2"): true}); !errors.Is(err, ErrExhausted) {
		t.Errorf("full /30: %v; want ErrExhausted", err)
	}
	// Every address of a /24 once: 253 of them, none repeated.
	seen := map[netip.Addr]bool{}
	for {
		a, err := nextAddr(s, gw, seen)
		if err != nil {
			break
		}
		if !s.Contains(a) || a == gw || a == s.Addr() || a == addr("10.0.3.255") {
			t.Fatalf("handed out %v", a)
		}
		seen[a] = true
	}
	if len(seen) != 253 {
		t.Errorf("%d addresses in a /24; want 253", len(seen))
	}
}

func TestNextVNIAndPort(t *testing.T) {
	if v, err := NextVNI(nil); err != nil || v != MinVNI {
		t.Errorf("NextVNI = %d, %v", v, err)
	}
	if v, _ := NextVNI(map[uint32]bool{MinVNI: true, MinVNI + 1: true}); v != MinVNI+2 {
		t.Errorf("NextVNI = %d; want %d", v, MinVNI+2)
	}
	used := map[uint32]bool{}
	for p := uint32(MinDynamicPort); p <= MaxDynamicPort; p++ {
		used[p] = true
	}
	if _, err := NextPort(used); !errors.Is(err, ErrExhausted) {
		t.Errorf("NextPort full = %v", err)
	}
	delete(used, 31000)
	if p, _ := NextPort(used); p != 31000 {
		t.Errorf("NextPort = %d; want 31000", p)
	}
}

func TestNextAddrAfterGoesRound(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.3.0/29") // usable .1-.6; .1 the gateway
	gw := netip.MustParseAddr("10.0.3.1")
	taken := func(as ...string) func(netip.Addr) bool {
		m := map[netip.Addr]bool{}
		for _, a := range as {
			m[netip.MustParseAddr(a)] = true
		}
		return func(a netip.Addr) bool { return m[a] }
	}
	for _, tc := range []struct {
		name, after string
		taken       []string
		want        string // "" = exhausted
	}{
		{"from the start", "", nil, "10.0.3.2"},
		{"after the last handed out", "10.0.3.3", nil, "10.0.3.4"},
		{"skips what is taken", "10.0.3.3", []string{"10.0.3.4", "10.0.3.5"}, "10.0.3.6"},
		{"goes round, past the gateway", "10.0.3.6", nil, "10.0.3.2"},
		{"goes round to a free one before the cursor", "10.0.3.4", []string{"10.0.3.5", "10.0.3.6", "10.0.3.2"}, "10.0.3.3"},
		{"a cursor outside the subnet starts at the start", "192.168.0.9", nil, "10.0.3.2"},
		{"full", "10.0.3.4", []string{"10.0.3.2", "10.0.3.3", "10.0.3.4", "10.0.3.5", "10.0.3.6"}, ""},
	} {
		var after netip.Addr
		if tc.after != "" {
			after = netip.MustParseAddr(tc.after)
		}
		got, err := nextAddrAfter(subnet, gw, after, taken(tc.taken...))
		switch {
		case tc.want == "" && !errors.Is(err, ErrExhausted):
			t.Errorf("%s: got %v, %v; want exhausted", tc.name, got, err)
		case tc.want != "" && (err != nil || got.String() != tc.want):
			t.Errorf("%s: got %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
}

// Every address of a subnet is handed out once before any repeats, and
// none is the gateway, whatever the cursor starts at.
func TestHeldNextAddrHandsOutEachOnce(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.4.0/26")
	gw := netip.MustParseAddr("10.0.4.1")
	var b Book
	seen := map[netip.Addr]bool{}
	release, err := b.Do(func(h *Held) error {
		for i := 0; i < 61; i++ {
			a, err := h.NextAddr("n", subnet, gw, func(netip.Addr) bool { return false })
			if err != nil {
				return err
			}
			if seen[a] || a == gw || !subnet.Contains(a) {
				t.Fatalf("allocation %d: %s (seen %v)", i, a, seen[a])
			}
			seen[a] = true
		}
		if _, err := h.NextAddr("n", subnet, gw, func(netip.Addr) bool { return false }); !errors.Is(err, ErrExhausted) {
			t.Errorf("a 62nd address from a /26: %v; want exhausted", err)
		}
		return nil
	})
	release()
	if err != nil {
		t.Fatal(err)
	}
}
