package store

import (
	"fmt"
	"net/netip"
	"testing"

	"pgregory.net/rapid"

	"github.com/shoal-run/shoal/manager/addrs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// After any sequence of writes, the address and port indexes say exactly
// what a scan of every service, task and node says.
func TestAddrIndexMatchesScan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := New()
		nets := []string{"n1", "n2"}
		addr := func(t *rapid.T, label string) string {
			return fmt.Sprintf("10.0.0.%d/24", rapid.IntRange(2, 9).Draw(t, label))
		}
		states := []shoalv1.TaskState{shoalv1.TaskState_TASK_STATE_NEW, shoalv1.TaskState_TASK_STATE_ASSIGNED, shoalv1.TaskState_TASK_STATE_RUNNING,
			shoalv1.TaskState_TASK_STATE_FAILED, shoalv1.TaskState_TASK_STATE_SHUTDOWN}
		desired := []shoalv1.TaskState{shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.TaskState_TASK_STATE_SHUTDOWN}
		exists := map[string]bool{}
		idx := uint64(0)
		for step := 0; step < rapid.IntRange(1, 40).Draw(t, "steps"); step++ {
			kind := rapid.IntRange(0, 2).Draw(t, "kind")
			id := fmt.Sprintf("o%d", rapid.IntRange(0, 5).Draw(t, "id"))
			var obj Object
			switch kind {
			case 0:
				svc := &shoalv1.Service{Id: "s" + id, Spec: &shoalv1.ServiceSpec{Name: "s" + id}, Endpoint: &shoalv1.ServiceEndpoint{}}
				for i := 0; i < rapid.IntRange(0, 2).Draw(t, "vips"); i++ {
					svc.Endpoint.VirtualIps = append(svc.Endpoint.VirtualIps, &shoalv1.VirtualIP{NetworkId: rapid.SampledFrom(nets).Draw(t, "net"), Addr: addr(t, "vip")})
				}
				if rapid.Bool().Draw(t, "port") {
					svc.Endpoint.Ports = []*shoalv1.PortConfig{{PublishedPort: uint32(rapid.IntRange(30000, 30003).Draw(t, "pp")), TargetPort: 80}}
				}
				obj = svc
			case 1:
				tk := &shoalv1.Task{Id: "t" + id, DesiredState: rapid.SampledFrom(desired).Draw(t, "desired"),
					Status: &shoalv1.TaskStatus{State: rapid.SampledFrom(states).Draw(t, "state")}}
				for i := 0; i < rapid.IntRange(0, 2).Draw(t, "ifaces"); i++ {
					tk.Networks = append(tk.Networks, &shoalv1.TaskNetwork{NetworkId: rapid.SampledFrom(nets).Draw(t, "net"), Addr: addr(t, "addr")})
				}
				obj = tk
			default:
				n := &shoalv1.Node{Id: "n" + id}
				if rapid.Bool().Draw(t, "ingress") {
					n.Ingress = &shoalv1.NodeAttachment{NetworkId: "n1", Addr: addr(t, "ingress")}
				}
				for i := 0; i < rapid.IntRange(0, 2).Draw(t, "atts"); i++ {
					n.Attachments = append(n.Attachments, &shoalv1.ContainerAttachment{Id: fmt.Sprint(i),
						Network: &shoalv1.TaskNetwork{NetworkId: rapid.SampledFrom(nets).Draw(t, "net"), Addr: addr(t, "att")}})
				}
				obj = n
			}
			table, _, _ := split(Wrap(obj))
			key := table + "/" + obj.GetId()
			act := shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE
			switch {
			case exists[key] && rapid.Bool().Draw(t, "delete"):
				act = shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE
				delete(exists, key)
			case exists[key]:
				act = shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE
			default:
				exists[key] = true
			}
			idx++
			if err := s.Apply(&shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{Kind: act, Object: Wrap(obj)}}}, idx); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		s.View(func(r ReadTx) {
			// The scan: every object's addresses and ports as it is now.
			svcs := List[*shoalv1.Service](r, TableService)
			used := map[addrs.NetAddr]bool{}
			for _, table := range []string{TableService, TableTask, TableNode} {
				for _, o := range List[Object](r, table) {
					for _, a := range addrs.Held(o) {
						used[a] = true
					}
				}
			}
			ports := func(except string) map[string]bool {
				out := map[string]bool{}
				for _, svc := range svcs {
					for _, p := range svc.GetEndpoint().GetPorts() {
						if svc.GetId() != except && p.GetPublishedPort() != 0 {
							out[PortString(p)] = true
						}
					}
				}
				return out
			}
			for _, nw := range nets {
				for i := 0; i < 12; i++ {
					a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
					if got, want := AddrInUse(r, nw, a), used[addrs.NetAddr{Network: nw, Addr: a}]; got != want {
						t.Fatalf("AddrInUse(%s, %s) = %v; the scan says %v", nw, a, got, want)
					}
				}
			}
			for p := 30000; p <= 30003; p++ {
				key := fmt.Sprintf("%d/tcp", p)
				for _, except := range []string{"", "so0", "so1"} {
					if got, want := PortInUse(r, key, except), ports(except)[key]; got != want {
						t.Fatalf("PortInUse(%s, except %q) = %v; the scan says %v", key, except, got, want)
					}
				}
			}
		})
	})
}
