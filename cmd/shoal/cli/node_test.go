package cli

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
