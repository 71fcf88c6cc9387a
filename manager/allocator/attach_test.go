package allocator

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/manager/addrs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestAttachContainer(t *testing.T) {
	nw := func(name string, attachable, ingress bool) *shoalv1.Network {
		return &shoalv1.Network{Id: "id-" + name, Spec: &shoalv1.NetworkSpec{Name: name, Attachable: attachable, Ingress: ingress},
			Allocation: &shoalv1.NetworkAllocation{Vni: 4100, Subnet: "10.0.5.0/24", Gateway: "10.0.5.1"}}
	}
	for _, tc := range []struct {
		name    string
		nw      *shoalv1.Network
		wantErr string
	}{
		{"attachable", nw("app", true, false), ""},
		{"not attachable", nw("app", false, false), `network "app" is not attachable`},
		{"ingress", nw("ingress", true, true), "ingress network"},
		{"no subnet", &shoalv1.Network{Id: "x", Spec: &shoalv1.NetworkSpec{Name: "x", Attachable: true}}, "no subnet allocated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b Book
			var att *shoalv1.ContainerAttachment
			release, err := b.Do(func(h *Held) (err error) {
				att, err = AttachContainer(tc.nw, "a1", "debug", nil, h)
				return err
			})
			defer release()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tn := att.GetNetwork()
			if att.GetId() != "a1" || tn.GetNetworkId() != "id-app" || tn.GetVni() != 4100 || tn.GetAddr() != "10.0.5.2/24" ||
				tn.GetGateway() != "10.0.5.1" || len(tn.GetAliases()) != 1 || tn.GetAliases()[0] != "debug" || tn.GetIngress() {
				t.Errorf("attachment = %v", att)
			}
		})
	}
}

// addrSet is addresses per network ID, as an InUse.
type addrSet map[string]map[netip.Addr]bool

func (s addrSet) inUse(network string, a netip.Addr) bool { return s[network][a] }

// A node's attachments are addresses it holds, beside its ingress one;
// the next container gets the next address.
func TestAddrsHeldByANode(t *testing.T) {
	node := &shoalv1.Node{Id: "n1", Ingress: &shoalv1.NodeAttachment{NetworkId: "ing", Addr: "10.0.0.7/24"},
		Attachments: []*shoalv1.ContainerAttachment{
			{Id: "a1", Network: &shoalv1.TaskNetwork{NetworkId: "app", Addr: "10.0.5.2/24"}},
			{Id: "a2", Network: &shoalv1.TaskNetwork{NetworkId: "app", Addr: "10.0.5.3/24"}},
		}}
	used := addrSet{}
	for _, a := range addrs.Held(node) {
		if used[a.Network] == nil {
			used[a.Network] = map[netip.Addr]bool{}
		}
		used[a.Network][a.Addr] = true
	}
	for _, a := range []addrs.NetAddr{{Network: "ing", Addr: netip.MustParseAddr("10.0.0.7")}, {Network: "app", Addr: netip.MustParseAddr("10.0.5.2")}, {Network: "app", Addr: netip.MustParseAddr("10.0.5.3")}} {
		if !used.inUse(a.Network, a.Addr) {
			t.Errorf("%v is not among the node's addresses %v", a, used)
		}
	}
	var b Book
	nw := &shoalv1.Network{Id: "app", Spec: &shoalv1.NetworkSpec{Name: "app", Attachable: true},
		Allocation: &shoalv1.NetworkAllocation{Subnet: "10.0.5.0/24", Gateway: "10.0.5.1"}}
	release, err := b.Do(func(h *Held) error {
		att, err := AttachContainer(nw, "a3", "", used.inUse, h)
		if err == nil && att.GetNetwork().GetAddr() != "10.0.5.4/24" {
			t.Errorf("third container got %s; want 10.0.5.4/24", att.GetNetwork().GetAddr())
		}
		if err == nil && len(att.GetNetwork().GetAliases()) != 0 {
			t.Errorf("a container without a name has aliases %v", att.GetNetwork().GetAliases())
		}
		return err
	})
	release()
	if err != nil {
		t.Fatal(err)
	}
}

// A full network says so, and what to do: for ingress, how to replace it.
func TestExhaustedNetworkSaysWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		ingress bool
		want    string
	}{
		{true, "shoal network create --ingress --subnet"},
		{false, "a larger --subnet"},
	} {
		nw := &shoalv1.Network{Id: "n", Spec: &shoalv1.NetworkSpec{Name: "net", Ingress: tc.ingress, Attachable: true},
			Allocation: &shoalv1.NetworkAllocation{Subnet: "10.0.9.0/30", Gateway: "10.0.9.1"}}
		used := addrSet{"n": {netip.MustParseAddr("10.0.9.2"): true}}
		var b Book
		release, err := b.Do(func(h *Held) error {
			_, err := nextIn(nw, used.inUse, h)
			return err
		})
		release()
		if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "10.0.9.0/30") {
			t.Errorf("ingress=%v: err = %v; want ErrExhausted naming the subnet and %q", tc.ingress, err, tc.want)
		}
	}
}
