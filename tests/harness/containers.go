package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Container is a container process that really runs on a node, as the
// machine sees it, whatever its daemon says (or whether it answers: a
// frozen, killed or partitioned daemon's containers are still found).
type Container struct {
	ID      string
	Name    string
	Pid     int
	Task    string // label shoal.task.id
	Service string // label shoal.service.name
	Env     []string
}

// RunningContainers lists the node's containers whose workload process is
// alive and in the node's cgroup parent, from the runtime's state files and
// /proc, sorted by task.
func (n *Node) RunningContainers() []Container {
	return RunningIn(filepath.Join(n.Dir, "data"), n.CgroupParent)
}

// RunningIn is RunningContainers for a daemon the harness did not start
// (`shoal dev`): its data dir and cgroup parent.
func RunningIn(dataDir, cgroupParent string) []Container {
	root := filepath.Join(dataDir, "runtime", "containers")
	dirs, _ := os.ReadDir(root)
	var out []Container
	for _, d := range dirs {
		var st struct {
			ID     string            `json:"id"`
			Name   string            `json:"name"`
			Pid    int               `json:"pid"`
			Labels map[string]string `json:"labels"`
		}
		data, err := os.ReadFile(filepath.Join(root, d.Name(), "state.json"))
		if err != nil || json.Unmarshal(data, &st) != nil || st.Pid <= 0 {
			continue
		}
		if !strings.Contains(readFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid)), cgroupParent) {
			continue // exited (or the PID is someone else's now)
		}
		if s := readFile(fmt.Sprintf("/proc/%d/stat", st.Pid)); zombie(s) {
			continue
		}
		env := strings.Split(strings.TrimRight(readFile(fmt.Sprintf("/proc/%d/environ", st.Pid)), "\x00"), "\x00")
		out = append(out, Container{ID: st.ID, Name: st.Name, Pid: st.Pid, Task: st.Labels["shoal.task.id"], Service: st.Labels["shoal.service.name"], Env: env})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Task < out[j].Task })
	return out
}

// zombie reports whether a /proc/PID/stat line is a process that exited
// but was not reaped yet.
func zombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i >= 0 && len(stat) > i+2 && stat[i+2] == 'Z'
}

// Of is the containers of service svc among cs.
func Of(svc string, cs []Container) []Container {
	var out []Container
	for _, c := range cs {
		if c.Service == svc {
			out = append(out, c)
		}
	}
	return out
}

// ServiceContainers counts, per node name, the containers of service svc
// really running across the cluster.
func (c *Cluster) ServiceContainers(svc string) (total int, byNode map[string]int) {
	byNode = map[string]int{}
	for _, n := range c.Nodes() {
		if k := len(Of(svc, n.RunningContainers())); k > 0 {
			byNode[n.Name] += k
			total += k
		}
	}
	return total, byNode
}
