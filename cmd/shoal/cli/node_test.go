package cli

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// racingNodes is a control API whose node changes (a heartbeat's status
// write) between each read and the update that follows it, for the first
// `races` updates.
type racingNodes struct {
	shoalv1.UnimplementedControlServiceServer
	mu      sync.Mutex
	node    *shoalv1.Node
	races   int
	updates int
}

func (s *racingNodes) GetNode(context.Context, *shoalv1.GetNodeRequest) (*shoalv1.GetNodeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &shoalv1.GetNodeResponse{Node: proto.Clone(s.node).(*shoalv1.Node)}, nil
}

func (s *racingNodes) UpdateNode(_ context.Context, req *shoalv1.UpdateNodeRequest) (*shoalv1.UpdateNodeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates++
	if s.races > 0 {
		s.races--
		s.node.Meta.Version++ // the heartbeat's write
	}
	if req.GetVersion() != s.node.GetMeta().GetVersion() {
		return nil, status.Errorf(codes.Aborted, "node %s was changed by someone else (version %d, you read %d); read it again and retry",
			s.node.GetId(), s.node.GetMeta().GetVersion(), req.GetVersion())
	}
	s.node.Spec = req.GetSpec()
	s.node.Meta.Version++
	return &shoalv1.UpdateNodeResponse{Node: s.node}, nil
}

func serveControl(t *testing.T, srv shoalv1.ControlServiceServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "control.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	shoalv1.RegisterControlServiceServer(s, srv)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return "unix://" + sock
}

// node update applies its edit again when a status write moved the
// node's version under it, keeps every other label, and gives up with
// the conflict after a bounded number of tries.
func TestNodeUpdateRetriesAConflict(t *testing.T) {
	for _, tc := range []struct {
		races   int
		wantErr bool
	}{
		{0, false},
		{2, false},
		{maxUpdateAttempts, true},
	} {
		srv := &racingNodes{races: tc.races, node: &shoalv1.Node{
			Id: "n1", Meta: &shoalv1.Meta{Version: 7}, Spec: &shoalv1.NodeSpec{Labels: map[string]string{"keep": "1"}},
		}}
		host := serveControl(t, srv)
		var out, errOut bytes.Buffer
		err := Run(context.Background(), []string{"-H", host, "node", "update", "--label-add", "zone=eu", "n1"}, &out, &errOut)
		if (err != nil) != tc.wantErr {
			t.Errorf("%d racing writes: node update = %v; want error %v", tc.races, err, tc.wantErr)
		}
		if tc.wantErr {
			if status.Code(err) != codes.Aborted && !bytes.Contains([]byte(Message(err)), []byte("changed by someone else")) {
				t.Errorf("%d racing writes: error %q; want the conflict", tc.races, Message(err))
			}
			if srv.updates != maxUpdateAttempts {
				t.Errorf("%d racing writes: %d updates sent; want %d", tc.races, srv.updates, maxUpdateAttempts)
			}
			continue
		}
		if l := srv.node.GetSpec().GetLabels(); l["zone"] != "eu" || l["keep"] != "1" {
			t.Errorf("%d racing writes: labels %v; want zone=eu and keep=1", tc.races, l)
		}
	}
}

func TestPrettyNode(t *testing.T) {
	n := &shoalv1.Node{Id: "n1", Meta: &shoalv1.Meta{CreatedAt: timestamppb.New(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))},
		Spec:          &shoalv1.NodeSpec{Labels: map[string]string{"zone": "a", "ssd": ""}, Availability: shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE},
		Status:        &shoalv1.NodeStatus{State: shoalv1.NodeState_NODE_STATE_READY, Addr: "10.0.0.1"},
		ManagerStatus: &shoalv1.ManagerStatus{Addr: "10.0.0.1:4242", Leader: true, Reachability: shoalv1.Reachability_REACHABILITY_REACHABLE},
		Description: &shoalv1.NodeDescription{Hostname: "host1", Version: "dev", Platform: &shoalv1.Platform{Os: "linux", Architecture: "amd64"},
			Resources: &shoalv1.Resources{NanoCpus: 2e9, MemoryBytes: 3 << 30}},
	}
	var b strings.Builder
	prettyNode(&b, n)
	for _, want := range []string{
		"ID:\t\t\tn1\n", "Labels:\n - ssd\n - zone=a\n", "Hostname:              \thost1\n", "Joined at:             \t2026-12-03 09:00:00 +0000 UTC\n",
		"Status:\n State:\t\t\tReady\n Availability:         \tActive\n Address:\t\t10.0.0.1\n",
		"Manager Status:\n Address:\t\t10.0.0.1:4242\n Raft Status:\t\tReachable\n Leader:\t\tYes\n",
		"Platform:\n Operating System:\tlinux\n Architecture:\t\tamd64\n", "Resources:\n CPUs:\t\t\t2\n Memory:\t\t3GiB\n", "Engine Version:\t\tdev\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("pretty lacks %q:\n%s", want, b.String())
		}
	}
}
