package scheduler

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// A refusal says which filter refused a node for a task, and why. Filters
// run in the order of the kinds below and the first refusal counts, so
// every refused node is counted once when the reasons are explained.
type refusal struct {
	kind   refusalKind
	detail int32 // availability, constraint index or port index
}

type refusalKind uint8

const (
	fits refusalKind = iota
	// Static refusals depend on the node and the task spec only.
	notPinned // another node than the one the task is pinned to
	notReady
	notActive
	failsConstraint
	unsupportedPlatform
	// Dynamic refusals depend on what is placed on the node.
	lacksCPU
	lacksMemory
	lacksCPUAndMemory
	portInUse
	atMaxReplicas
)

// staticCheck runs the filters that depend on the node and the spec
// only: the pinned node, ready, active, constraints.
func (p *placer) staticCheck(i int, g *spec) refusal {
	n := p.nodes[i].n
	if g.node != "" && n.ID != g.node {
		return refusal{kind: notPinned}
	}
	if !n.Ready {
		return refusal{kind: notReady}
	}
	if n.Availability != Active {
		return refusal{kind: notActive, detail: int32(n.Availability)}
	}
	if len(g.platforms) > 0 && !slices.ContainsFunc(g.platforms, func(pl platform) bool { return pl.matches(n) }) {
		return refusal{kind: unsupportedPlatform}
	}
	for j, m := range g.matches {
		if m == nil && !g.constraints[j].Matches(n) || m != nil && !m[i] {
			return refusal{kind: failsConstraint, detail: int32(j)}
		}
	}
	return refusal{}
}

// dynamicCheck runs the filters that depend on what is reserved and
// running on node i: resources, host ports, replicas per node.
func (p *placer) dynamicCheck(i int, g *spec) refusal {
	ns := &p.nodes[i]
	cpu := g.cpu > 0 && g.cpu > ns.n.NanoCPUs-ns.cpu
	mem := g.mem > 0 && g.mem > ns.n.MemoryBytes-ns.mem
	switch {
	case cpu && mem:
		return refusal{kind: lacksCPUAndMemory}
	case cpu:
		return refusal{kind: lacksCPU}
	case mem:
		return refusal{kind: lacksMemory}
	}
	for j, port := range g.ports {
		if ns.n.HostPorts[port] || ns.ports[port] {
			return refusal{kind: portInUse, detail: int32(j)}
		}
	}
	if g.max > 0 && p.svcCount[i] >= g.max {
		return refusal{kind: atMaxReplicas}
	}
	return refusal{}
}

// check runs every filter for node i and the spec, against the state of
// the batch so far.
func (p *placer) check(i int, g *spec) refusal {
	if r := p.staticCheck(i, g); r.kind != fits {
		return r
	}
	return p.dynamicCheck(i, g)
}

// explain says why no node can take a task of the spec, counting every
// node under the first filter that refuses it: "no suitable node (2 nodes
// lack 1 GiB of memory; 1 node is drained)". Reasons with more nodes come
// first; among equal counts, capacity (resources, ports, replicas per
// node) comes before availability, constraints and readiness, the
// order in which an operator usually acts on them.
//
// A pinned task is explained by its node alone: "node x lacks 1 GiB of
// memory".
func (p *placer) explain(g *spec) string {
	if g.node != "" {
		i, ok := p.index[g.node]
		if !ok {
			return "node " + g.node + " is not in the cluster"
		}
		return describe(p.check(int(i), g), "node "+g.node, true, g)
	}
	if len(p.nodes) == 0 {
		return "no nodes in the cluster"
	}
	counts := make(map[refusal]int)
	for i := range p.nodes {
		counts[p.check(i, g)]++
	}
	type reason struct {
		r     refusal
		count int
		text  string
	}
	reasons := make([]reason, 0, len(counts))
	for r, n := range counts {
		reasons = append(reasons, reason{r, n, describe(r, countNodes(n), n == 1, g)})
	}
	slices.SortFunc(reasons, func(a, b reason) int {
		return cmp.Or(
			cmp.Compare(b.count, a.count),
			cmp.Compare(displayRank[a.r.kind], displayRank[b.r.kind]),
			strings.Compare(a.text, b.text))
	})
	var sb strings.Builder
	sb.WriteString("no suitable node (")
	for i, r := range reasons {
		if i > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(r.text)
	}
	sb.WriteString(")")
	return sb.String()
}

var displayRank = [...]int{
	notPinned:           7, // never shown: a pinned task is explained by its node
	lacksCPU:            0,
	lacksMemory:         0,
	lacksCPUAndMemory:   0,
	portInUse:           1,
	atMaxReplicas:       2,
	notActive:           3,
	failsConstraint:     4,
	unsupportedPlatform: 4,
	notReady:            5,
	fits:                6, // never shown: a group fails only when no node fits
}

// countNodes is the subject of a reason for n nodes: "1 node", "3 nodes".
func countNodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return strconv.Itoa(n) + " nodes"
}

// describe phrases one reason for its subject ("3 nodes", "node x"),
// one node or several.
func describe(r refusal, subject string, one bool, g *spec) string {
	count := subject + " "
	verb := func(singular, plural string) string {
		if one {
			return count + singular
		}
		return count + plural
	}
	switch r.kind {
	case notReady:
		return verb("is not ready", "are not ready")
	case notActive:
		switch Availability(r.detail) {
		case Drain:
			return verb("is drained", "are drained")
		case Pause:
			return verb("is paused", "are paused")
		}
		return verb("has", "have") + " unknown availability " + strconv.Itoa(int(r.detail))
	case failsConstraint:
		return verb("fails", "fail") + " constraint " + g.constraints[r.detail].String()
	case unsupportedPlatform:
		return verb("is", "are") + " not of the image's platforms (" + strings.Join(g.platformNames, ", ") + ")"
	case lacksCPU:
		return verb("lacks ", "lack ") + formatCPUs(g.cpu)
	case lacksMemory:
		return verb("lacks ", "lack ") + formatBytes(g.mem) + " of memory"
	case lacksCPUAndMemory:
		return verb("lacks ", "lack ") + formatCPUs(g.cpu) + " and " + formatBytes(g.mem) + " of memory"
	case portInUse:
		return verb("has", "have") + " host port " + g.ports[r.detail] + " in use"
	case atMaxReplicas:
		return verb("has", "have") + " reached the limit of " + strconv.FormatInt(g.max, 10) + " replicas per node"
	}
	return verb("fits", "fit")
}

// formatBytes phrases a byte count with a binary unit: "512 MiB",
// "1.5 GiB".
func formatBytes(b int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, u := float64(b), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return strconv.FormatInt(b, 10) + " B"
	}
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + " " + units[u]
}

// formatCPUs phrases nano-CPUs as CPUs: "1 CPU", "0.5 CPUs".
func formatCPUs(nano int64) string {
	if nano == 1e9 {
		return "1 CPU"
	}
	return strconv.FormatFloat(float64(nano)/1e9, 'f', -1, 64) + " CPUs"
}
