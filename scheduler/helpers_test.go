package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

const gib = 1 << 30

// node returns a ready, active linux/amd64 worker with 4 CPUs and 8 GiB,
// changed by mods.
func node(id string, mods ...func(*Node)) Node {
	n := Node{
		ID: id, Hostname: id, Role: "worker", Ready: true, Availability: Active,
		OS: "linux", Arch: "amd64", NanoCPUs: 4e9, MemoryBytes: 8 * gib,
	}
	for _, m := range mods {
		m(&n)
	}
	return n
}

func withLabels(kv ...string) func(*Node) {
	return func(n *Node) {
		n.Labels = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func unready(n *Node)    { n.Ready = false }
func drained(n *Node)    { n.Availability = Drain }
func paused(n *Node)     { n.Availability = Pause }
func manager(n *Node)    { n.Role = "manager" }
func noCapacity(n *Node) { n.NanoCPUs, n.MemoryBytes = 0, 0 }

func reserved(cpu, mem int64) func(*Node) {
	return func(n *Node) { n.ReservedNanoCPUs, n.ReservedMemory = cpu, mem }
}

func running(service string, count int) func(*Node) {
	return func(n *Node) {
		if n.ServiceTasks == nil {
			n.ServiceTasks = map[string]int{}
		}
		n.ServiceTasks[service] += count
		n.Tasks += count
	}
}

func portsInUse(ports ...string) func(*Node) {
	return func(n *Node) {
		n.HostPorts = map[string]bool{}
		for _, p := range ports {
			n.HostPorts[p] = true
		}
	}
}

func failed(service string, count int) func(*Node) {
	return func(n *Node) { n.RecentFailures = map[string]int{service: count} }
}

// replicas returns count tasks of service "<service>.<i>" built from tmpl.
func replicas(service string, count int, tmpl Task) []Task {
	out := make([]Task, count)
	for i := range out {
		t := tmpl
		t.ID = fmt.Sprintf("%s.%03d", service, i)
		t.ServiceID = service
		out[i] = t
	}
	return out
}

// perNode counts the placements on each node.
func perNode(r Result) map[string]int {
	c := map[string]int{}
	for _, n := range r.Placements {
		c[n]++
	}
	return c
}

// nodeIDs summarizes nodes for failure messages.
func nodeIDs(nodes []Node) string {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	return "[" + strings.Join(ids, " ") + "]"
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
