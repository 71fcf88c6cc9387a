package controlapi

import (
	"context"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// ListNodeVolumes answers every node's local volumes (or one node's) from
// the descriptions the nodes report in their heartbeats; each carries its
// node's ID.
func (s *Server) ListNodeVolumes(ctx context.Context, req *shoalv1.ListNodeVolumesRequest) (*shoalv1.ListNodeVolumesResponse, error) {
	var nodes []*shoalv1.Node
	if ref := req.GetNodeId(); ref != "" {
		n, err := s.findNode(ref)
		if err != nil {
			return nil, err
		}
		nodes = []*shoalv1.Node{n}
	} else {
		s.Store.View(func(r store.ReadTx) { nodes = store.List[*shoalv1.Node](r, store.TableNode) })
	}
	out := &shoalv1.ListNodeVolumesResponse{}
	for _, n := range nodes {
		for _, v := range n.GetDescription().GetVolumes() {
			v = proto.CloneOf(v)
			v.NodeId = n.GetId()
			out.Volumes = append(out.Volumes, v)
		}
	}
	sort.Slice(out.Volumes, func(i, j int) bool {
		a, b := out.Volumes[i], out.Volumes[j]
		if a.GetNodeId() != b.GetNodeId() {
			return a.GetNodeId() < b.GetNodeId()
		}
		return a.GetName() < b.GetName()
	})
	return out, nil
}
