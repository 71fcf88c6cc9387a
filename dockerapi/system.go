package dockerapi

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"

	"github.com/shoal-run/shoal/dockerapi/convert"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// ping answers GET and HEAD /_ping with the headers Docker's clients
// negotiate by: the API version and the node's swarm status.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Docker-Experimental", "false")
	h.Set("Builder-Version", "")
	if info, err := s.cfg.Swarm.Info(r.Context(), &shoalv1.InfoRequest{}); err == nil {
		st := info.GetState()
		if st == "active" {
			if info.GetManager() {
				st += "/manager"
			} else {
				st += "/worker"
			}
		}
		h.Set("Swarm", st)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("OK"))
	return nil
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	v := s.cfg.Host.Version
	return ok(w, system.VersionResponse{
		Platform: system.PlatformInfo{Name: "Shoal " + v},
		Components: []system.ComponentVersion{{Name: "Engine", Version: v, Details: map[string]string{
			"ApiVersion": MaxAPIVersion, "MinAPIVersion": MinAPIVersion, "Os": goruntime.GOOS, "Arch": goruntime.GOARCH,
			"GoVersion": goruntime.Version(), "KernelVersion": kernelVersion(),
		}}},
		Version: v, APIVersion: MaxAPIVersion, MinAPIVersion: MinAPIVersion, Os: goruntime.GOOS, Arch: goruntime.GOARCH,
		GoVersion: goruntime.Version(), KernelVersion: kernelVersion(),
	})
}

func kernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func machine() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return goruntime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}

func operatingSystem() (name, version string) {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux", ""
	}
	name = "Linux"
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		v = strings.Trim(v, `"`)
		switch k {
		case "PRETTY_NAME":
			name = v
		case "VERSION_ID":
			version = v
		}
	}
	return name, version
}

func memTotal() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	osName, osVersion := operatingSystem()
	h := s.cfg.Host
	out := system.Info{
		Driver: "overlayfs", DriverStatus: [][2]string{{"Backing Filesystem", "overlay"}},
		Plugins: system.PluginsInfo{
			Volume: []string{"local"}, Network: []string{"overlay"}, Log: []string{"json-file"},
		},
		MemoryLimit: true, CPUCfsPeriod: true, CPUCfsQuota: true, PidsLimit: true, IPv4Forwarding: true,
		NGoroutines: goruntime.NumGoroutine(), SystemTime: time.Now().Format(time.RFC3339Nano),
		LoggingDriver: "json-file", CgroupDriver: "cgroupfs", CgroupVersion: h.CgroupVersion,
		KernelVersion: kernelVersion(), OperatingSystem: osName, OSVersion: osVersion, OSType: "linux",
		Architecture: machine(), NCPU: goruntime.NumCPU(), MemTotal: memTotal(), DockerRootDir: h.DataDir,
		Name: h.Hostname, ServerVersion: h.Version, DefaultRuntime: "shoal",
		Runtimes:  map[string]system.RuntimeWithStatus{"shoal": {Runtime: system.Runtime{Path: "shoal"}}},
		Isolation: "", InitBinary: "shoal", SecurityOptions: []string{},
	}
	for k, v := range h.Labels {
		out.Labels = append(out.Labels, k+"="+v)
	}
	if cs, err := s.cfg.Runtime.ListContainers(ctx, &shoalv1.ListContainersRequest{All: true}); err == nil {
		for _, c := range cs.GetContainers() {
			out.Containers++
			if c.GetStatus() == "running" {
				out.ContainersRunning++
			} else {
				out.ContainersStopped++
			}
		}
	}
	if is, err := s.cfg.Runtime.ListImages(ctx, &shoalv1.ListImagesRequest{}); err == nil {
		out.Images = len(is.GetImages())
	}
	out.Swarm = s.swarmInfo(r)
	out.ID = out.Swarm.NodeID
	return ok(w, out)
}

// swarmInfo is /info's Swarm section.
func (s *Server) swarmInfo(r *http.Request) swarm.Info {
	ctx := r.Context()
	info, err := s.cfg.Swarm.Info(ctx, &shoalv1.InfoRequest{})
	if err != nil {
		return swarm.Info{LocalNodeState: swarm.LocalNodeStateError, Error: message(err)}
	}
	out := swarm.Info{NodeID: info.GetNodeId(), NodeAddr: hostOf(info.GetAddr()), LocalNodeState: swarm.LocalNodeState(info.GetState())}
	switch info.GetState() {
	case "inactive", "":
		out.LocalNodeState = swarm.LocalNodeStateInactive
		return out
	case "locked":
		return out
	}
	out.ControlAvailable = info.GetManager() && info.GetState() == "active"
	for _, m := range info.GetManagers() {
		out.RemoteManagers = append(out.RemoteManagers, swarm.Peer{Addr: m})
	}
	if !out.ControlAvailable {
		return out
	}
	if c, err := s.cfg.Control.GetCluster(ctx, &shoalv1.GetClusterRequest{}); err == nil {
		ci := convert.ClusterInfo(c.GetCluster())
		out.Cluster = &ci
	}
	if ns, err := s.cfg.Control.ListNodes(ctx, &shoalv1.ListNodesRequest{}); err == nil {
		out.RemoteManagers = nil
		for _, n := range ns.GetNodes() {
			out.Nodes++
			if m := n.GetManagerStatus(); m != nil {
				out.Managers++
				out.RemoteManagers = append(out.RemoteManagers, swarm.Peer{NodeID: n.GetId(), Addr: m.GetAddr()})
			}
		}
	}
	return out
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}
