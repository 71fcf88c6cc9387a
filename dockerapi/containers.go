package dockerapi

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types"
	"github.com/moby/moby/api/types/container"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// taskLabels are the worker's labels on a task's container and Docker's
// names for them (what `docker ps --filter label=com.docker.swarm.service.name=web`
// looks for). The bulky ones (the task's record, its networks) are
// left out.
var taskLabels = map[string]string{
	"shoal.task.id":      "com.docker.swarm.task.id",
	"shoal.service.id":   "com.docker.swarm.service.id",
	"shoal.service.name": "com.docker.swarm.service.name",
}

var hiddenLabels = map[string]bool{"shoal.task.record": true, "shoal.networks": true, "shoal.healthcheck": true}

func dockerLabels(in map[string]string, nodeID string) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		if hiddenLabels[k] {
			continue
		}
		out[k] = v
		if d, ok := taskLabels[k]; ok {
			out[d] = v
		}
	}
	if _, ok := out["com.docker.swarm.task.id"]; ok && nodeID != "" {
		out["com.docker.swarm.node.id"] = nodeID
	}
	return out
}

func (s *Server) nodeID(r *http.Request) string {
	info, err := s.cfg.Swarm.Info(r.Context(), &shoalv1.InfoRequest{})
	if err != nil {
		return ""
	}
	return info.GetNodeId()
}

// containerStatus is Docker's Status column: "Up 5 minutes", "Exited
// (0) 2 hours ago".
func containerStatus(c *shoalv1.Container, now time.Time) string {
	switch c.GetStatus() {
	case "running":
		s := "Up " + units.HumanDuration(now.Sub(c.GetStartedAt().AsTime()))
		switch c.GetHealth() {
		case "starting":
			s += " (health: starting)"
		case "healthy", "unhealthy":
			s += " (" + c.GetHealth() + ")"
		}
		return s
	case "created":
		return "Created"
	}
	if c.GetFinishedAt() == nil {
		return fmt.Sprintf("Exited (%d)", c.GetExitCode())
	}
	return fmt.Sprintf("Exited (%d) %s ago", c.GetExitCode(), units.HumanDuration(now.Sub(c.GetFinishedAt().AsTime())))
}

func dockerState(status string) container.ContainerState {
	switch status {
	case "running":
		return container.StateRunning
	case "created":
		return container.StateCreated
	}
	return container.StateExited
}

// containerFilter is docker ps's --filter: id, name, label, status.
func containerFilter(fs []*shoalv1.Filter) (func(c *shoalv1.Container, labels map[string]string) bool, error) {
	for _, f := range fs {
		switch f.GetKey() {
		case "id", "name", "label", "status":
		default:
			return nil, fmt.Errorf("invalid filter %q: Shoal's docker ps takes id, name, label and status: %w", f.GetKey(), errdefs.ErrInvalid)
		}
	}
	return func(c *shoalv1.Container, labels map[string]string) bool {
		for _, f := range fs {
			match := false
			for _, v := range f.GetValues() {
				switch f.GetKey() {
				case "id":
					match = match || strings.HasPrefix(c.GetId(), v)
				case "name":
					match = match || strings.Contains(c.GetName(), strings.TrimPrefix(v, "/"))
				case "status":
					match = match || string(dockerState(c.GetStatus())) == v
				case "label":
					k, want, hasValue := strings.Cut(v, "=")
					got, ok := labels[k]
					match = match || ok && (!hasValue || got == want)
				}
			}
			if !match {
				return false
			}
		}
		return true
	}, nil
}

func (s *Server) containerList(w http.ResponseWriter, r *http.Request) error {
	fs, err := filters(r)
	if err != nil {
		return err
	}
	keep, err := containerFilter(fs)
	if err != nil {
		return err
	}
	resp, err := s.cfg.Runtime.ListContainers(r.Context(), &shoalv1.ListContainersRequest{All: boolQuery(r, "all")})
	if err != nil {
		return err
	}
	node, now := s.nodeID(r), time.Now()
	out := []container.Summary{}
	for _, c := range resp.GetContainers() {
		labels := dockerLabels(c.GetLabels(), node)
		if !keep(c, labels) {
			continue
		}
		sum := container.Summary{
			ID: c.GetId(), Names: []string{"/" + c.GetName()}, Image: c.GetImage(), ImageID: c.GetImageId(),
			Command: strings.Join(c.GetCommand(), " "), Created: c.GetCreatedAt().AsTime().Unix(), Ports: []container.PortSummary{},
			Labels: labels, State: dockerState(c.GetStatus()), Status: containerStatus(c, now), Mounts: []container.MountPoint{},
		}
		sum.HostConfig.NetworkMode = "default"
		if h := c.GetHealth(); h != "" {
			sum.Health = &container.HealthSummary{Status: container.HealthStatus(h)}
		}
		out = append(out, sum)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created > out[j].Created })
	return ok(w, out)
}

// container finds a container by ID, unique ID prefix or name.
func (s *Server) container(r *http.Request, ref string) (*shoalv1.Container, error) {
	resp, err := s.cfg.Runtime.ListContainers(r.Context(), &shoalv1.ListContainersRequest{All: true})
	if err != nil {
		return nil, err
	}
	var prefix []*shoalv1.Container
	for _, c := range resp.GetContainers() {
		if c.GetId() == ref || c.GetName() == strings.TrimPrefix(ref, "/") {
			return c, nil
		}
		if strings.HasPrefix(c.GetId(), ref) {
			prefix = append(prefix, c)
		}
	}
	switch len(prefix) {
	case 1:
		return prefix[0], nil
	case 0:
		return nil, fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
	}
	return nil, fmt.Errorf("multiple containers match %q: give more of the ID: %w", ref, errdefs.ErrInvalid)
}

func (s *Server) containerInspect(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	st := &container.State{
		Status: dockerState(c.GetStatus()), Running: c.GetStatus() == "running", OOMKilled: c.GetOomKilled(),
		Pid: int(c.GetPid()), ExitCode: int(c.GetExitCode()), Error: c.GetError(),
		StartedAt: rfc3339(c.GetStartedAt()), FinishedAt: rfc3339(c.GetFinishedAt()),
	}
	if h := c.GetHealth(); h != "" {
		st.Health = &container.Health{Status: container.HealthStatus(h)}
	}
	out := container.InspectResponse{
		ID: c.GetId(), Created: rfc3339(c.GetCreatedAt()), State: st, Image: c.GetImageId(), Name: "/" + c.GetName(),
		Driver: "overlayfs", Platform: "linux", HostConfig: &container.HostConfig{},
		Config: &container.Config{Image: c.GetImage(), Labels: dockerLabels(c.GetLabels(), s.nodeID(r))},
		Mounts: []container.MountPoint{},
	}
	if cmd := c.GetCommand(); len(cmd) > 0 {
		out.Path, out.Args = cmd[0], cmd[1:]
		out.Config.Cmd = cmd
	}
	for _, m := range c.GetMounts() {
		mp := container.MountPoint{Source: m.GetSource(), Destination: m.GetTarget(), RW: !m.GetReadOnly()}
		switch m.GetType() {
		case shoalv1.MountType_MOUNT_TYPE_BIND:
			mp.Type = "bind"
		case shoalv1.MountType_MOUNT_TYPE_VOLUME:
			mp.Type, mp.Name, mp.Driver = "volume", m.GetSource(), "local"
		case shoalv1.MountType_MOUNT_TYPE_TMPFS:
			mp.Type = "tmpfs"
		}
		out.Mounts = append(out.Mounts, mp)
	}
	return ok(w, out)
}

func rfc3339(t interface{ AsTime() time.Time }) string {
	if t == nil {
		return "0001-01-01T00:00:00Z"
	}
	return t.AsTime().UTC().Format(time.RFC3339Nano)
}

// containerLogs streams a container's output as Docker's engine does:
// multiplexed frames (raw with a TTY), tail, since, until, timestamps.
// The lines written before the request came are the ones tail counts.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) error {
	o, err := parseLogOptions(r)
	if err != nil {
		return err
	}
	c, err := s.container(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", types.MediaTypeMultiplexedStream)
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	writeLine := func(m *shoalv1.ContainerLogsResponse) error {
		t := m.GetTime().AsTime()
		out := stdcopy.Stdout
		if m.GetStream() == "stderr" {
			out = stdcopy.Stderr
		}
		if out == stdcopy.Stdout && !o.stdout || out == stdcopy.Stderr && !o.stderr {
			return nil
		}
		buf := []byte{byte(out), 0, 0, 0, 0, 0, 0, 0}
		if o.timestamps {
			buf = append(buf, t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")+" "...)
		}
		buf = append(buf, m.GetLine()...)
		binary.BigEndian.PutUint32(buf[4:8], uint32(len(buf)-8))
		_, err := w.Write(buf)
		return err
	}
	stream, err := s.cfg.Runtime.ContainerLogs(r.Context(), &shoalv1.ContainerLogsRequest{Id: c.GetId(), Follow: o.opts.GetFollow(), Options: o.opts})
	if err != nil {
		return nil
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil
		}
		if writeLine(m) != nil {
			return nil
		}
		if fl != nil {
			fl.Flush()
		}
	}
}
