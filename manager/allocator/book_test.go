package allocator

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
)

func TestBookHoldsUntilRelease(t *testing.T) {
	var b Book
	a := netip.MustParseAddr("10.0.0.2")
	release, err := b.Do(func(h *Held) error {
		h.Addr("n1", a)
		h.Subnet(netip.MustParsePrefix("10.0.1.0/24"))
		h.VNI(4096)
		h.Port("30000/tcp")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(want bool) {
		t.Helper()
		_, _ = b.Do(func(h *Held) error {
			vnis := map[uint32]bool{}
			h.AddVNIs(vnis)
			if h.AddrHeld("n1", a) != want || vnis[4096] != want || h.PortHeld("30000/tcp") != want || (len(h.Subnets()) == 1) != want {
				t.Errorf("held = %v %v %v %v; want %v", h.AddrHeld("n1", a), vnis[4096], h.PortHeld("30000/tcp"), h.Subnets(), want)
			}
			if h.AddrHeld("n2", a) {
				t.Errorf("another network holds %s", a)
			}
			return nil
		})
	}
	check(true)
	release()
	check(false)
	release() // twice is harmless
	check(false)
}

func TestBookReleasesOnError(t *testing.T) {
	var b Book
	a := netip.MustParseAddr("10.0.0.2")
	boom := errors.New("boom")
	if _, err := b.Do(func(h *Held) error { h.Addr("n1", a); return boom }); !errors.Is(err, boom) {
		t.Fatalf("Do = %v", err)
	}
	_, _ = b.Do(func(h *Held) error {
		if h.AddrHeld("n1", a) {
			t.Error("an allocation that failed is still held")
		}
		return nil
	})
}

// Concurrent allocators through one Book never take the same address.
func TestBookConcurrentAllocationsDiffer(t *testing.T) {
	var b Book
	subnet := netip.MustParsePrefix("10.0.5.0/24")
	var mu sync.Mutex
	got := map[netip.Addr]int{}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.Do(func(h *Held) error {
				a, err := h.NextAddr("n", subnet, Gateway(subnet), func(netip.Addr) bool { return false })
				if err != nil {
					return err
				}
				mu.Lock()
				got[a]++
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(got) != 50 {
		t.Errorf("%d distinct addresses for 50 allocations", len(got))
	}
}
