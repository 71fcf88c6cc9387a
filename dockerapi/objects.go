package dockerapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/volume"

	"github.com/shoal-run/shoal/dockerapi/convert"
	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Networks: the cluster's overlay networks (scope swarm). Docker's
// engine also lists its local bridge, host and none networks; a Shoal
// node has none of those, and a filter on scope local or a driver other
// than overlay lists nothing.

func (s *Server) networkList(w http.ResponseWriter, r *http.Request) error {
	fs, err := filters(r)
	if err != nil {
		return err
	}
	fs, scopes := take(fs, "scope")
	for _, sc := range scopes {
		if sc != "swarm" && sc != "global" {
			// only swarm-scoped networks exist here
			return ok(w, []network.Summary{})
		}
	}
	resp, err := s.cfg.Control.ListNetworks(r.Context(), &shoalv1.ListNetworksRequest{Filters: fs})
	if err != nil {
		return err
	}
	out := []network.Summary{}
	for _, n := range resp.GetNetworks() {
		out = append(out, network.Summary{Network: convert.Network(n).Network})
	}
	return ok(w, out)
}

func (s *Server) networkInspect(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.cfg.Control.GetNetwork(r.Context(), &shoalv1.GetNetworkRequest{NetworkId: r.PathValue("id")})
	if err != nil {
		return err
	}
	return ok(w, convert.Network(resp.GetNetwork()))
}

func (s *Server) networkCreate(w http.ResponseWriter, r *http.Request) error {
	var in network.CreateRequest
	if err := decode(r, &in); err != nil {
		return err
	}
	spec, err := convert.NetworkSpec(in)
	if err != nil {
		return err
	}
	resp, err := s.cfg.Control.CreateNetwork(r.Context(), &shoalv1.CreateNetworkRequest{Spec: spec})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, network.CreateResponse{ID: resp.GetNetwork().GetId()})
	return nil
}

// networkDrainWait is how long a network's removal waits for the tasks
// of removed services to let go of it: docker stack rm removes the
// networks right after the services, as Swarm lets it, without waiting.
const networkDrainWait = 60 * time.Second

func (s *Server) networkRemove(w http.ResponseWriter, r *http.Request) error {
	deadline := time.Now().Add(networkDrainWait)
	for {
		_, err := s.cfg.Control.RemoveNetwork(r.Context(), &shoalv1.RemoveNetworkRequest{NetworkId: r.PathValue("id")})
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "while their containers stop") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-r.Context().Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) networkConnect(w http.ResponseWriter, r *http.Request) error {
	return fmt.Errorf("connecting a container to a network through the Docker API is not implemented by Shoal: start it on the network with `shoal run --network NAME`, or add the network to a service with `docker service update --network-add NAME`: %w", errNotImplemented)
}

func (s *Server) secretList(w http.ResponseWriter, r *http.Request) error {
	fs, err := filters(r)
	if err != nil {
		return err
	}
	resp, err := s.cfg.Control.ListSecrets(r.Context(), &shoalv1.ListSecretsRequest{Filters: fs})
	if err != nil {
		return err
	}
	out := []swarm.Secret{}
	for _, x := range resp.GetSecrets() {
		out = append(out, convert.Secret(x))
	}
	return ok(w, out)
}

func (s *Server) secretInspect(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.cfg.Control.GetSecret(r.Context(), &shoalv1.GetSecretRequest{SecretId: r.PathValue("id")})
	if err != nil {
		return err
	}
	return ok(w, convert.Secret(resp.GetSecret()))
}

func (s *Server) secretCreate(w http.ResponseWriter, r *http.Request) error {
	var in swarm.SecretSpec
	if err := decode(r, &in); err != nil {
		return err
	}
	spec, err := convert.SecretSpec(in)
	if err != nil {
		return err
	}
	resp, err := s.cfg.Control.CreateSecret(r.Context(), &shoalv1.CreateSecretRequest{Spec: spec})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, swarm.SecretCreateResponse{ID: resp.GetSecret().GetId()})
	return nil
}

func (s *Server) secretUpdate(w http.ResponseWriter, r *http.Request) error {
	version, err := versionQuery(r)
	if err != nil {
		return err
	}
	var in swarm.SecretSpec
	if err := decode(r, &in); err != nil {
		return err
	}
	spec, err := convert.SecretSpec(in)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Control.UpdateSecret(r.Context(), &shoalv1.UpdateSecretRequest{SecretId: r.PathValue("id"), Version: version, Spec: spec}); err != nil {
		return outOfSequence(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) secretRemove(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.cfg.Control.RemoveSecret(r.Context(), &shoalv1.RemoveSecretRequest{SecretId: r.PathValue("id")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) configList(w http.ResponseWriter, r *http.Request) error {
	fs, err := filters(r)
	if err != nil {
		return err
	}
	resp, err := s.cfg.Control.ListConfigs(r.Context(), &shoalv1.ListConfigsRequest{Filters: fs})
	if err != nil {
		return err
	}
	out := []swarm.Config{}
	for _, x := range resp.GetConfigs() {
		out = append(out, convert.Config(x))
	}
	return ok(w, out)
}

func (s *Server) configInspect(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.cfg.Control.GetConfig(r.Context(), &shoalv1.GetConfigRequest{ConfigId: r.PathValue("id")})
	if err != nil {
		return err
	}
	return ok(w, convert.Config(resp.GetConfig()))
}

func (s *Server) configCreate(w http.ResponseWriter, r *http.Request) error {
	var in swarm.ConfigSpec
	if err := decode(r, &in); err != nil {
		return err
	}
	spec, err := convert.ConfigSpec(in)
	if err != nil {
		return err
	}
	resp, err := s.cfg.Control.CreateConfig(r.Context(), &shoalv1.CreateConfigRequest{Spec: spec})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, swarm.ConfigCreateResponse{ID: resp.GetConfig().GetId()})
	return nil
}

func (s *Server) configUpdate(w http.ResponseWriter, r *http.Request) error {
	version, err := versionQuery(r)
	if err != nil {
		return err
	}
	var in swarm.ConfigSpec
	if err := decode(r, &in); err != nil {
		return err
	}
	spec, err := convert.ConfigSpec(in)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Control.UpdateConfig(r.Context(), &shoalv1.UpdateConfigRequest{ConfigId: r.PathValue("id"), Version: version, Spec: spec}); err != nil {
		return outOfSequence(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) configRemove(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.cfg.Control.RemoveConfig(r.Context(), &shoalv1.RemoveConfigRequest{ConfigId: r.PathValue("id")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Volumes are this node's, as Docker's engine's are.

func (s *Server) volumeList(w http.ResponseWriter, r *http.Request) error {
	fs, err := filters(r)
	if err != nil {
		return err
	}
	if len(fs) > 0 {
		keys := ""
		for _, f := range fs {
			keys += " " + f.GetKey()
		}
		return fmt.Errorf("volume filters (%s) are not supported by Shoal's Docker API; list them all, or use `shoal volume ls --filter`: %w", keys[1:], errdefs.ErrInvalid)
	}
	resp, err := s.cfg.Runtime.ListVolumes(r.Context(), &shoalv1.ListVolumesRequest{})
	if err != nil {
		return err
	}
	out := volume.ListResponse{Volumes: []volume.Volume{}, Warnings: []string{}}
	for _, v := range resp.GetVolumes() {
		vv := convert.Volume(v)
		out.Volumes = append(out.Volumes, vv)
	}
	return ok(w, out)
}

func (s *Server) volumeInspect(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.cfg.Runtime.InspectVolume(r.Context(), &shoalv1.InspectVolumeRequest{Name: r.PathValue("name")})
	if err != nil {
		return err
	}
	return ok(w, convert.Volume(resp.GetVolume()))
}

func (s *Server) volumeCreate(w http.ResponseWriter, r *http.Request) error {
	var in volume.CreateRequest
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.ClusterVolumeSpec != nil {
		return fmt.Errorf("ClusterVolumeSpec is not supported by Shoal: its volumes are each node's (local): %w", errdefs.ErrInvalid)
	}
	resp, err := s.cfg.Runtime.CreateVolume(r.Context(), &shoalv1.CreateVolumeRequest{Name: in.Name, Driver: in.Driver, Labels: in.Labels, Options: in.DriverOpts})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, convert.Volume(resp.GetVolume()))
	return nil
}

func (s *Server) volumeRemove(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.cfg.Runtime.RemoveVolume(r.Context(), &shoalv1.RemoveVolumeRequest{Name: r.PathValue("name"), Force: boolQuery(r, "force")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
