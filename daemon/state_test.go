package daemon

import (
	"testing"

	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// What a heartbeat answer says that a restart needs is kept, saved and
// read back; an answer that says nothing new changes nothing.
func TestRememberSurvivesSaveAndLoad(t *testing.T) {
	d := &Daemon{cfg: Config{DataDir: t.TempDir()}, st: &state{ClusterID: "c", NodeID: "n"}}
	in := &shoalv1.TaskNetwork{NetworkId: "ing", NetworkName: "ingress", Vni: 4096, Addr: "10.0.0.3/24", Gateway: "10.0.0.1", Ingress: true}
	resp := &shoalv1.HeartbeatResponse{Managers: []string{"10.99.0.2:4242"}, GossipKeys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
		GossipPeers: []string{"10.99.0.2:7946", "10.99.0.3:7946"}, Ingress: in}
	steps := []struct {
		name    string
		resp    *shoalv1.HeartbeatResponse
		changed bool
	}{
		{"first answer", resp, true},
		{"the same again", resp, false},
		{"an answer with none of it", &shoalv1.HeartbeatResponse{}, false},
		{"rotated keys", &shoalv1.HeartbeatResponse{GossipKeys: [][]byte{[]byte("fedcba9876543210fedcba9876543210")}}, true},
		{"a new ingress address", &shoalv1.HeartbeatResponse{Ingress: &shoalv1.TaskNetwork{NetworkId: "ing", Addr: "10.0.0.9/24", Ingress: true}}, true},
	}
	for _, s := range steps {
		if got := d.remember(s.resp); got != s.changed {
			t.Errorf("%s: remember = %v; want %v", s.name, got, s.changed)
		}
	}
	if err := d.saveState(d.st); err != nil {
		t.Fatal(err)
	}
	got, err := d.loadState()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GossipKeys) != 1 || string(got.GossipKeys[0]) != "fedcba9876543210fedcba9876543210" {
		t.Errorf("keys after load: %q", got.GossipKeys)
	}
	if len(got.GossipPeers) != 2 || len(got.Managers) != 1 {
		t.Errorf("peers %v, managers %v after load", got.GossipPeers, got.Managers)
	}
	want := &shoalv1.TaskNetwork{NetworkId: "ing", Addr: "10.0.0.9/24", Ingress: true}
	if !proto.Equal(got.ingress(), want) {
		t.Errorf("ingress after load = %v; want %v", got.ingress(), want)
	}
	if (&state{Ingress: []byte("{not json")}).ingress() != nil {
		t.Error("a corrupt ingress record reads as an attachment")
	}
}
