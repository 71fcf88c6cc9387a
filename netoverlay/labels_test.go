package netoverlay

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestNetworksLabel(t *testing.T) {
	task := &shoalv1.Task{Id: "t1", ServiceId: "s1", ServiceName: "web", Slot: 3, NodeId: "n1",
		Networks: []*shoalv1.TaskNetwork{{NetworkId: "app", Vni: 4097, Addr: "10.0.1.5/24", Gateway: "10.0.1.1", Vip: "10.0.1.2/24", Aliases: []string{"w"}}}}
	v, err := EncodeNetworks(task)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeNetworks(v)
	if err != nil {
		t.Fatal(err)
	}
	want := &shoalv1.Task{Id: "t1", ServiceId: "s1", ServiceName: "web", Networks: task.GetNetworks()}
	if !proto.Equal(got, want) {
		t.Errorf("decoded %v; want %v (only what the overlay reads)", got, want)
	}
	noNet, _ := EncodeNetworks(&shoalv1.Task{Id: "t2"})
	for _, bad := range []struct{ name, v, want string }{
		{"not base64", "!!!", "shoal.networks"},
		{"not a task", "AAEC", "shoal.networks"},
		{"no network", noNet, "no task ID or no network"},
	} {
		if _, err := DecodeNetworks(bad.v); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: err = %v; want one naming %q", bad.name, err, bad.want)
		}
	}
}
