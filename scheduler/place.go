package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Place assigns tasks to nodes. Every task ends up in exactly one of
// Result.Placements and Result.Unplaced (with a reason such as "no
// suitable node (2 nodes lack 1 GiB of memory; 1 node is drained)").
//
// Tasks of one service with the same scheduling fields form a group.
// Groups are placed one after another in the order of service ID and then
// spec, each task of a group in the order of task ID, so the result depends
// on the set of nodes and tasks and on the seed, not on the order of the
// slices. Each placement counts against the nodes for the rest of the
// batch: its reservations, host ports and replicas per node.
//
// A task is unplaced only if, when its group's turn came, no node passed
// every filter for it; since placements only add load, no node passes them
// with the final placements either.
//
// Place does not modify nodes or tasks.
func Place(nodes []Node, tasks []Task, seed int64) Result {
	return place(nodes, tasks, seed, options{})
}

// options choose between equivalent ways of computing the same Result;
// tests check that they agree.
type options struct {
	svcIndex int8 // 0: when cheaper; 1: always; -1: never
	noDriver bool // scan every node even for a group with an == constraint
}

func place(nodes []Node, tasks []Task, seed int64, opt options) Result {
	res := Result{
		Placements: make(map[string]string, len(tasks)),
		Unplaced:   make(map[string]string),
	}
	if len(tasks) == 0 {
		return res
	}
	groups, services := groupTasks(tasks)
	p := newPlacer(nodes, seed, services, opt)
	for _, g := range groups {
		p.placeGroup(g, tasks, &res)
	}
	return res
}

// nodeState is a node and what the batch has placed on it so far.
type nodeState struct {
	n        *Node
	tie      uint64  // tie-breaker, a hash of the seed and the node ID
	tasks    int64   // n.Tasks and the batch's tasks
	cpu, mem int64   // reserved, including the batch
	share    float64 // dominant share of reserved CPU or memory, for Binpack
	ports    map[string]bool
}

func (ns *nodeState) updateShare() {
	ns.share = 0
	if c := ns.n.NanoCPUs; c > 0 {
		ns.share = float64(ns.cpu) / float64(c)
	}
	if m := ns.n.MemoryBytes; m > 0 {
		ns.share = max(ns.share, float64(ns.mem)/float64(m))
	}
}

// placer holds the state of one call to Place.
type placer struct {
	nodes []nodeState
	all   []int32          // 0, 1, ..., len(nodes)-1
	index map[string]int32 // node ID -> index into nodes

	// service is the service whose groups are being placed. Groups are
	// sorted by service, so its counts per node live in two slices that
	// are reset when the service changes.
	service   string
	svcLoaded bool
	svcCount  []int64 // tasks of service on each node, including the batch's
	svcFail   []int32 // recent failures of service on each node
	touched   []int32 // nodes whose svcCount or svcFail may be non-zero
	// svcIndex lists the nodes of each service (from ServiceTasks and
	// RecentFailures) when that is cheaper than a lookup on every node
	// per service; nil otherwise.
	svcIndex map[string][]svcEntry

	opt options

	// Caches over the batch: which nodes meet a constraint, the nodes
	// by value of an attribute, and the tree shape of a list of
	// placement preferences.
	matchCache map[constraintKey][]bool
	valueIndex map[attribute]map[string][]int32
	shapeCache map[string]*shape

	g *spec // the spec being placed, for the comparisons

	// Buffers reused from group to group.
	subBuf   []subtree
	childBuf []*subtree
	candBuf  []int32
	path     []*subtree
}

type svcEntry struct {
	node         int32
	tasks, fails int32
}

func newPlacer(nodes []Node, seed int64, services int, opt options) *placer {
	p := &placer{
		nodes:      make([]nodeState, 0, len(nodes)),
		opt:        opt,
		matchCache: make(map[constraintKey][]bool),
		valueIndex: make(map[attribute]map[string][]int32),
		shapeCache: make(map[string]*shape),
	}
	p.index = make(map[string]int32, len(nodes))
	entries := 0
	for i := range nodes {
		n := &nodes[i]
		if _, dup := p.index[n.ID]; dup {
			continue
		}
		p.index[n.ID] = int32(len(p.nodes))
		ns := nodeState{
			n:     n,
			tie:   tieBreak(seed, n.ID),
			tasks: int64(n.Tasks),
			cpu:   n.ReservedNanoCPUs,
			mem:   n.ReservedMemory,
		}
		ns.updateShare()
		p.nodes = append(p.nodes, ns)
		entries += len(n.ServiceTasks) + len(n.RecentFailures)
	}
	p.all = make([]int32, len(p.nodes))
	for i := range p.all {
		p.all[i] = int32(i)
	}
	p.svcCount = make([]int64, len(p.nodes))
	p.svcFail = make([]int32, len(p.nodes))
	if opt.svcIndex > 0 || (opt.svcIndex == 0 && entries < services*len(p.nodes)) {
		p.svcIndex = make(map[string][]svcEntry)
		for i := range p.nodes {
			n := p.nodes[i].n
			for s, c := range n.ServiceTasks {
				p.svcIndex[s] = append(p.svcIndex[s], svcEntry{node: int32(i), tasks: int32(c)})
			}
			for s, f := range n.RecentFailures {
				p.svcIndex[s] = append(p.svcIndex[s], svcEntry{node: int32(i), fails: int32(f)})
			}
		}
	}
	return p
}

// tieBreak hashes the seed and a node ID (FNV-1a, then a splitmix64
// finalizer), giving each seed its own fixed order of the nodes.
func tieBreak(seed int64, id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	h ^= uint64(seed) * 0x9e3779b97f4a7c15
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// setService loads the per-node counts of service.
func (p *placer) setService(service string) {
	if service == p.service && p.svcLoaded {
		return
	}
	p.svcLoaded = true
	for _, i := range p.touched {
		p.svcCount[i], p.svcFail[i] = 0, 0
	}
	p.touched = p.touched[:0]
	p.service = service
	if p.svcIndex != nil {
		for _, e := range p.svcIndex[service] {
			p.svcCount[e.node] += int64(e.tasks)
			p.svcFail[e.node] += e.fails
			p.touched = append(p.touched, e.node)
		}
		return
	}
	for i := range p.nodes {
		n := p.nodes[i].n
		c, f := n.ServiceTasks[service], n.RecentFailures[service]
		if c != 0 || f != 0 {
			p.svcCount[i], p.svcFail[i] = int64(c), int32(f)
			p.touched = append(p.touched, int32(i))
		}
	}
}

// spec is the compiled scheduling fields of a group of tasks.
type spec struct {
	service     string
	constraints []Constraint
	matches     [][]bool // per constraint, which nodes meet it; nil: evaluate it
	useDriver   bool     // scan only the driver's nodes, not all
	driver      []int32  // the nodes meeting the most selective == constraint
	prefs       []attribute
	prefsKey    string
	cpu, mem    int64
	ports       []string
	max         int64
	strategy    Strategy
	node        string // the one node the tasks may go to; "" for any
	// platforms the node must be of one of (none: any), and as given.
	platforms     []platform
	platformNames []string
}

// platform is one of a task's platforms; an empty part matches any.
type platform struct{ os, arch string }

func (pl platform) matches(n *Node) bool {
	return (pl.os == "" || pl.os == strings.ToLower(n.OS)) && (pl.arch == "" || pl.arch == normArch(n.Arch))
}

func compileSpec(t *Task) (*spec, error) {
	g := &spec{
		service:  t.ServiceID,
		cpu:      t.ReserveNanoCPUs,
		mem:      t.ReserveMemory,
		ports:    t.HostPorts,
		max:      t.MaxReplicasPerNode,
		strategy: t.Strategy,
		node:     t.Node,
	}
	switch {
	case g.cpu < 0:
		return nil, fmt.Errorf("invalid task: negative CPU reservation %d", g.cpu)
	case g.mem < 0:
		return nil, fmt.Errorf("invalid task: negative memory reservation %d", g.mem)
	case g.max < 0:
		return nil, fmt.Errorf("invalid task: negative max replicas per node %d", g.max)
	case g.strategy != Spread && g.strategy != Binpack:
		return nil, fmt.Errorf("invalid task: unknown strategy %d", int(g.strategy))
	}
	for _, s := range t.Constraints {
		c, err := ParseConstraint(s)
		if err != nil {
			return nil, err
		}
		g.constraints = append(g.constraints, c)
	}
	for _, s := range t.Preferences {
		a, err := parsePreference(s)
		if err != nil {
			return nil, err
		}
		g.prefs = append(g.prefs, a)
	}
	g.prefsKey = strings.Join(t.Preferences, "\x00")
	for _, s := range t.Platforms {
		os, arch, _ := strings.Cut(s, "/")
		g.platforms = append(g.platforms, platform{os: strings.ToLower(os), arch: normArch(arch)})
		g.platformNames = append(g.platformNames, s)
	}
	return g, nil
}

// group is the tasks of one service with the same scheduling fields.
type group struct {
	service string
	key     string  // the spec, see specKey
	tasks   []int32 // indices into the batch, sorted by task ID
}

// groupTasks groups the batch, skipping repeated task IDs, orders the
// groups by service and spec and their tasks by ID, and counts the
// services.
func groupTasks(tasks []Task) ([]*group, int) {
	seen := make(map[string]struct{}, len(tasks))
	byKey := make(map[string]*group)
	var groups []*group
	var last *group
	var lastTask *Task
	for i := range tasks {
		t := &tasks[i]
		if _, dup := seen[t.ID]; dup {
			continue
		}
		seen[t.ID] = struct{}{}
		if last == nil || !sameSpec(t, lastTask) {
			k := specKey(t)
			last = byKey[k]
			if last == nil {
				last = &group{service: t.ServiceID, key: k}
				byKey[k] = last
				groups = append(groups, last)
			}
			lastTask = t
		}
		last.tasks = append(last.tasks, int32(i))
	}
	slices.SortFunc(groups, func(a, b *group) int {
		return cmp.Or(strings.Compare(a.service, b.service), strings.Compare(a.key, b.key))
	})
	byID := func(a, b int32) int { return strings.Compare(tasks[a].ID, tasks[b].ID) }
	services := 0
	for i, g := range groups {
		if !slices.IsSortedFunc(g.tasks, byID) {
			slices.SortFunc(g.tasks, byID)
		}
		if i == 0 || g.service != groups[i-1].service {
			services++
		}
	}
	return groups, services
}

func sameSpec(a, b *Task) bool {
	return a.ServiceID == b.ServiceID && a.Node == b.Node &&
		a.ReserveNanoCPUs == b.ReserveNanoCPUs &&
		a.ReserveMemory == b.ReserveMemory &&
		a.MaxReplicasPerNode == b.MaxReplicasPerNode &&
		a.Strategy == b.Strategy &&
		slices.Equal(a.Constraints, b.Constraints) &&
		slices.Equal(a.Preferences, b.Preferences) &&
		slices.Equal(a.Platforms, b.Platforms) &&
		slices.Equal(a.HostPorts, b.HostPorts)
}

// specKey encodes the scheduling fields of a task, each string
// length-prefixed so that no two specs share a key.
func specKey(t *Task) string {
	b := make([]byte, 0, 64)
	str := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	str(t.ServiceID)
	str(t.Node)
	for _, n := range []int64{t.ReserveNanoCPUs, t.ReserveMemory, t.MaxReplicasPerNode, int64(t.Strategy)} {
		b = strconv.AppendInt(b, n, 10)
		b = append(b, ',')
	}
	for _, list := range [][]string{t.Constraints, t.Preferences, t.HostPorts, t.Platforms} {
		b = strconv.AppendInt(b, int64(len(list)), 10)
		b = append(b, '[')
		for _, s := range list {
			str(s)
		}
	}
	return string(b)
}

// placeGroup places the tasks of one group, most preferred node first,
// until they are all placed or no node can take the next one.
func (p *placer) placeGroup(gr *group, tasks []Task, res *Result) {
	g, err := compileSpec(&tasks[gr.tasks[0]])
	if err != nil {
		for _, i := range gr.tasks {
			res.Unplaced[tasks[i].ID] = err.Error()
		}
		return
	}
	p.prepare(g)
	p.setService(g.service)
	p.g = g
	root := p.build(g)
	for k, i := range gr.tasks {
		if root.empty() {
			reason := p.explain(g)
			for _, i := range gr.tasks[k:] {
				res.Unplaced[tasks[i].ID] = reason
			}
			return
		}
		res.Placements[tasks[i].ID] = p.nodes[p.take(root)].n.ID
	}
}
