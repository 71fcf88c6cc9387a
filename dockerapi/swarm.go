package dockerapi

import (
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-run/shoal/dockerapi/convert"
	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// cliListenAddr is the docker CLI's default --listen-addr, which means
// "the daemon's": a Shoal manager listens where its daemon's
// --listen-addr says.
const cliListenAddr = "0.0.0.0:2377"

func (s *Server) swarmInspect(w http.ResponseWriter, r *http.Request) error {
	c, err := s.cfg.Control.GetCluster(r.Context(), &shoalv1.GetClusterRequest{})
	if err != nil {
		return err
	}
	cl := c.GetCluster()
	return ok(w, swarm.Swarm{ClusterInfo: convert.ClusterInfo(cl), JoinTokens: swarm.JoinTokens{
		Worker: cl.GetJoinTokens().GetWorker(), Manager: cl.GetJoinTokens().GetManager(),
	}})
}

func checkNodeAddrs(listen, dataPath string, availability swarm.NodeAvailability) error {
	if listen != "" && listen != cliListenAddr {
		return fmt.Errorf("the ListenAddr %q is not supported by Shoal: a manager listens on its daemon's --listen-addr: %w", listen, errdefs.ErrInvalid)
	}
	if dataPath != "" {
		return fmt.Errorf("the DataPathAddr is not supported by Shoal: the overlay's traffic goes from the advertised address: %w", errdefs.ErrInvalid)
	}
	if availability != "" && availability != swarm.NodeAvailabilityActive {
		return fmt.Errorf("the Availability %q at init or join is not supported by Shoal: the node starts active; then run `docker node update --availability %s`: %w", availability, availability, errdefs.ErrInvalid)
	}
	return nil
}

func (s *Server) swarmInit(w http.ResponseWriter, r *http.Request) error {
	var req swarm.InitRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkNodeAddrs(req.ListenAddr, req.DataPathAddr, req.Availability); err != nil {
		return err
	}
	if req.DataPathPort != 0 && req.DataPathPort != convert.DataPathPort {
		return fmt.Errorf("the DataPathPort %d is not supported by Shoal: the overlay uses UDP port %d: %w", req.DataPathPort, convert.DataPathPort, errdefs.ErrInvalid)
	}
	spec := &shoalv1.ClusterSpec{}
	if err := convert.ApplySwarmSpec(spec, req.Spec); err != nil {
		return err
	}
	in := &shoalv1.InitRequest{
		AdvertiseAddr: req.AdvertiseAddr, ForceNewCluster: req.ForceNewCluster, TaskHistoryLimit: spec.GetTaskHistoryLimit(),
		Autolock: req.AutoLockManagers || req.Spec.EncryptionConfig.AutoLockManagers, SubnetSize: req.SubnetSize,
	}
	if req.Spec.CAConfig.NodeCertExpiry != 0 {
		in.CertExpiry = durationpb.New(req.Spec.CAConfig.NodeCertExpiry)
	}
	for _, p := range req.DefaultAddrPool {
		in.DefaultAddrPools = append(in.DefaultAddrPools, p.String())
	}
	resp, err := s.cfg.Swarm.Init(r.Context(), in)
	if err != nil {
		return err
	}
	return ok(w, resp.GetNodeId())
}

func (s *Server) swarmJoin(w http.ResponseWriter, r *http.Request) error {
	var req swarm.JoinRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkNodeAddrs(req.ListenAddr, req.DataPathAddr, req.Availability); err != nil {
		return err
	}
	if len(req.RemoteAddrs) == 0 {
		return fmt.Errorf("RemoteAddrs is empty: give a manager's address: %w", errdefs.ErrInvalid)
	}
	// Shoal tries one manager; the others are a retry away.
	var last error
	for _, addr := range req.RemoteAddrs {
		_, err := s.cfg.Swarm.Join(r.Context(), &shoalv1.JoinRequest{Token: req.JoinToken, RemoteAddr: addr, AdvertiseAddr: req.AdvertiseAddr})
		if err == nil {
			w.WriteHeader(http.StatusOK)
			return nil
		}
		last = err
		if !errdefs.Is(errFrom(err), errdefs.ErrUnavailable) {
			break
		}
	}
	return last
}

func (s *Server) swarmLeave(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.cfg.Swarm.Leave(r.Context(), &shoalv1.LeaveRequest{Force: boolQuery(r, "force")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) swarmUpdate(w http.ResponseWriter, r *http.Request) error {
	version, err := versionQuery(r)
	if err != nil {
		return err
	}
	var spec swarm.Spec
	if err := decode(r, &spec); err != nil {
		return err
	}
	c, err := s.cfg.Control.GetCluster(r.Context(), &shoalv1.GetClusterRequest{})
	if err != nil {
		return err
	}
	next := proto.Clone(c.GetCluster().GetSpec()).(*shoalv1.ClusterSpec)
	if next == nil {
		next = &shoalv1.ClusterSpec{}
	}
	if err := convert.ApplySwarmSpec(next, spec); err != nil {
		return err
	}
	_, err = s.cfg.Control.UpdateCluster(r.Context(), &shoalv1.UpdateClusterRequest{
		Version: version, Spec: next,
		RotateWorkerToken: boolQuery(r, "rotateWorkerToken"), RotateManagerToken: boolQuery(r, "rotateManagerToken"),
		RotateUnlockKey: boolQuery(r, "rotateManagerUnlockKey"),
	})
	if err != nil {
		return outOfSequence(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// outOfSequence words a stale version's conflict as Swarm does, so
// scripts that look for it find it.
func outOfSequence(err error) error {
	err = errFrom(err)
	if errdefs.Is(err, errdefs.ErrConflict) && strings.Contains(err.Error(), "changed by someone else") {
		return fmt.Errorf("update out of sequence: %w", err)
	}
	return err
}

func (s *Server) swarmUnlockKey(w http.ResponseWriter, r *http.Request) error {
	k, err := s.cfg.Control.GetUnlockKey(r.Context(), &shoalv1.GetUnlockKeyRequest{})
	if err != nil {
		return err
	}
	return ok(w, swarm.UnlockKeyResponse{UnlockKey: k.GetUnlockKey()})
}

func (s *Server) swarmUnlock(w http.ResponseWriter, r *http.Request) error {
	var req swarm.UnlockRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if _, err := s.cfg.Swarm.Unlock(r.Context(), &shoalv1.UnlockRequest{UnlockKey: req.UnlockKey}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
