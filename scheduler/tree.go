package scheduler

// The candidates of a group are a tree of heaps. Its levels are the
// group's placement preferences, outermost first: the children of a
// subtree are the values of the next spread descriptor (nodes without the
// label share the value ""), and the leaves hold the nodes that can take
// a task, as a heap ordered by the strategy. A subtree's children form a
// heap too, ordered by the tasks of the service in the subtree and then
// by their best node, so the best node of the whole group is found by
// following the first element of each heap.
//
// Placing a task changes only the nodes on that path: the chosen node's
// key changes (or it no longer fits and leaves its heap) and each subtree
// on the path has one more task. Each heap on the path is repaired from
// its root, bottom up, and an emptied subtree leaves its parent: a
// placement costs O(log n) comparisons per level. Building the tree runs
// every filter once per node, so a group costs O(nodes + tasks·log nodes).
//
// The shape of the tree (which node is in which subtree) depends on the
// labels only, so it is computed once per list of preferences and batch.

// shape is the static structure of a preference tree. Subtrees are
// numbered so that a parent comes before its children; 0 is the root.
type shape struct {
	parent   []int32   // per subtree; -1 for the root
	children [][]int32 // per subtree
	leaf     []bool    // per subtree
	size     []int32   // per subtree: nodes in a leaf
	leafOf   []int32   // per node: its leaf
}

// shape returns the tree shape of the spec's preferences.
func (p *placer) shape(g *spec) *shape {
	if sh, ok := p.shapeCache[g.prefsKey]; ok {
		return sh
	}
	depth := len(g.prefs)
	sh := &shape{
		parent:   []int32{-1},
		children: [][]int32{nil},
		leaf:     []bool{depth == 0},
		size:     []int32{0},
		leafOf:   make([]int32, len(p.nodes)),
	}
	type edge struct {
		parent int32
		value  string
	}
	index := make(map[edge]int32)
	for i := range p.nodes {
		t := int32(0)
		for d, a := range g.prefs {
			e := edge{t, a.value(p.nodes[i].n)}
			c, ok := index[e]
			if !ok {
				c = int32(len(sh.parent))
				index[e] = c
				sh.parent = append(sh.parent, t)
				sh.children = append(sh.children, nil)
				sh.leaf = append(sh.leaf, d == depth-1)
				sh.size = append(sh.size, 0)
				sh.children[t] = append(sh.children[t], c)
			}
			t = c
		}
		sh.leafOf[i] = t
		sh.size[t]++
	}
	p.shapeCache[g.prefsKey] = sh
	return sh
}

type subtree struct {
	leaf     bool
	count    int64      // tasks of the service on the subtree's eligible nodes
	children []*subtree // a heap; inner subtrees only
	cands    []int32    // a heap of node indices; leaves only
}

func (t *subtree) empty() bool { return len(t.children) == 0 && len(t.cands) == 0 }

// build makes the tree of the group's candidates and returns its root.
// Subtree counts include every eligible node (ready, active, meeting the
// constraints), also those without room for the task: the spread is over
// where the service's tasks run. The tree lives in buffers of p that the
// next group reuses.
func (p *placer) build(g *spec) *subtree {
	sh := p.shape(g)
	k := len(sh.parent)
	if cap(p.subBuf) < k {
		p.subBuf = make([]subtree, k)
		p.childBuf = make([]*subtree, k)
	}
	if cap(p.candBuf) < len(p.nodes) {
		p.candBuf = make([]int32, len(p.nodes))
	}
	subs := p.subBuf[:k]
	off := 0
	for j := range subs {
		subs[j] = subtree{leaf: sh.leaf[j]}
		if sh.leaf[j] {
			end := off + int(sh.size[j])
			subs[j].cands = p.candBuf[off:off:end]
			off = end
		}
	}
	nodes := p.all
	if g.useDriver {
		nodes = g.driver
	}
	for _, i := range nodes {
		if p.staticCheck(int(i), g).kind != fits {
			continue
		}
		t := &subs[sh.leafOf[i]]
		t.count += p.svcCount[i]
		if p.dynamicCheck(int(i), g).kind == fits {
			t.cands = append(t.cands, i)
		}
	}
	// Bottom up: children come after their parents.
	off = 0
	for j := k - 1; j >= 0; j-- {
		t := &subs[j]
		if t.leaf {
			for i := len(t.cands)/2 - 1; i >= 0; i-- {
				p.siftCands(t.cands, i)
			}
		} else {
			end := off + len(sh.children[j])
			t.children = p.childBuf[off:off:end]
			off = end
			for _, c := range sh.children[j] {
				if !subs[c].empty() {
					t.children = append(t.children, &subs[c])
				}
			}
			for i := len(t.children)/2 - 1; i >= 0; i-- {
				p.siftTrees(t.children, i)
			}
		}
		if j > 0 {
			subs[sh.parent[j]].count += t.count
		}
	}
	return &subs[0]
}

// take places one task of the group p.g on its best node and returns the
// node's index. The tree must not be empty.
func (p *placer) take(root *subtree) int32 {
	g := p.g
	path := append(p.path[:0], root)
	t := root
	for !t.leaf {
		t = t.children[0]
		path = append(path, t)
	}
	p.path = path

	i := t.cands[0]
	ns := &p.nodes[i]
	ns.tasks++
	ns.cpu += g.cpu
	ns.mem += g.mem
	if g.cpu != 0 || g.mem != 0 {
		ns.updateShare()
	}
	if len(g.ports) > 0 {
		if ns.ports == nil {
			ns.ports = make(map[string]bool, len(g.ports))
		}
		for _, port := range g.ports {
			ns.ports[port] = true
		}
	}
	if p.svcCount[i] == 0 {
		p.touched = append(p.touched, i)
	}
	p.svcCount[i]++

	// The node still fits unless its room, a host port or the replicas
	// per node ran out; other nodes are unchanged.
	fits := len(g.ports) == 0 &&
		(g.cpu == 0 || g.cpu <= ns.n.NanoCPUs-ns.cpu) &&
		(g.mem == 0 || g.mem <= ns.n.MemoryBytes-ns.mem) &&
		(g.max == 0 || p.svcCount[i] < g.max)
	if fits {
		p.siftCands(t.cands, 0)
	} else {
		t.cands = p.popCand(t.cands)
	}
	for d := len(path) - 1; d > 0; d-- {
		child, parent := path[d], path[d-1]
		child.count++
		if child.empty() {
			parent.children = p.popTree(parent.children)
		} else {
			p.siftTrees(parent.children, 0)
		}
	}
	return i
}

// candLess orders the nodes of a leaf: fewer recent failures of the
// service first, then by strategy, then by the seeded tie-breaker.
func (p *placer) candLess(a, b int32) bool {
	if fa, fb := p.svcFail[a], p.svcFail[b]; fa != fb {
		return fa < fb
	}
	na, nb := &p.nodes[a], &p.nodes[b]
	if p.g.strategy == Binpack {
		if na.share != nb.share {
			return na.share > nb.share
		}
		if na.tasks != nb.tasks {
			return na.tasks > nb.tasks
		}
	} else {
		if sa, sb := p.svcCount[a], p.svcCount[b]; sa != sb {
			return sa < sb
		}
		if na.tasks != nb.tasks {
			return na.tasks < nb.tasks
		}
	}
	if na.tie != nb.tie {
		return na.tie < nb.tie
	}
	return a < b
}

// treeLess orders sibling subtrees: fewer tasks of the service first,
// then the better best node.
func (p *placer) treeLess(a, b *subtree) bool {
	if a.count != b.count {
		return a.count < b.count
	}
	return p.candLess(best(a), best(b))
}

func best(t *subtree) int32 {
	for !t.leaf {
		t = t.children[0]
	}
	return t.cands[0]
}

func (p *placer) siftCands(h []int32, i int) {
	for {
		m := 2*i + 1
		if m >= len(h) {
			return
		}
		if r := m + 1; r < len(h) && p.candLess(h[r], h[m]) {
			m = r
		}
		if !p.candLess(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (p *placer) popCand(h []int32) []int32 {
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	p.siftCands(h, 0)
	return h
}

func (p *placer) siftTrees(h []*subtree, i int) {
	for {
		m := 2*i + 1
		if m >= len(h) {
			return
		}
		if r := m + 1; r < len(h) && p.treeLess(h[r], h[m]) {
			m = r
		}
		if !p.treeLess(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (p *placer) popTree(h []*subtree) []*subtree {
	last := len(h) - 1
	h[0] = h[last]
	h[last] = nil
	h = h[:last]
	p.siftTrees(h, 0)
	return h
}
