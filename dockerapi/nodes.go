package dockerapi

import (
	"net/http"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-run/shoal/dockerapi/convert"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// rootCA is the cluster's CA certificate, shown as each node's trust
// root; "" when the cluster cannot be read.
func (s *Server) rootCA(r *http.Request) []byte {
	c, err := s.cfg.Control.GetCluster(r.Context(), &shoalv1.GetClusterRequest{})
	if err != nil {
		return nil
	}
	return c.GetCluster().GetRootCa().GetCertPem()
}

func (s *Server) nodeList(w http.ResponseWriter, r *http.Request) error {
	fs, err := filters(r)
	if err != nil {
		return err
	}
	resp, err := s.cfg.Control.ListNodes(r.Context(), &shoalv1.ListNodesRequest{Filters: fs})
	if err != nil {
		return err
	}
	ca := s.rootCA(r)
	out := []swarm.Node{}
	for _, n := range resp.GetNodes() {
		out = append(out, convert.Node(n, ca))
	}
	return ok(w, out)
}

func (s *Server) nodeInspect(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.cfg.Control.GetNode(r.Context(), &shoalv1.GetNodeRequest{NodeId: r.PathValue("id")})
	if err != nil {
		return err
	}
	return ok(w, convert.Node(resp.GetNode(), s.rootCA(r)))
}

func (s *Server) nodeUpdate(w http.ResponseWriter, r *http.Request) error {
	version, err := versionQuery(r)
	if err != nil {
		return err
	}
	var in swarm.NodeSpec
	if err := decode(r, &in); err != nil {
		return err
	}
	spec, err := convert.NodeSpec(in)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Control.UpdateNode(r.Context(), &shoalv1.UpdateNodeRequest{NodeId: r.PathValue("id"), Version: version, Spec: spec}); err != nil {
		return outOfSequence(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) nodeRemove(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.cfg.Control.RemoveNode(r.Context(), &shoalv1.RemoveNodeRequest{NodeId: r.PathValue("id"), Force: boolQuery(r, "force")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
