package scheduler

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Building a group's tree runs the filters on every node. Two indexes keep
// that cheap across the groups of a batch:
//
//   - which nodes meet a constraint, as a bitmap per distinct constraint,
//     computed once per batch (up to maxCachedConstraints of them);
//   - the nodes by value of an attribute, so a group with an ==
//     constraint ("node.id==x", "node.labels.zone==eu") looks only at the
//     nodes with that value: many groups pinned to one node each (say,
//     one per node of a global service) cost O(tasks), not O(tasks·nodes).

// maxCachedConstraints bounds the memory of the bitmaps (one byte per node
// each); constraints beyond it are evaluated on each candidate.
const maxCachedConstraints = 256

type constraintKey struct {
	attr attribute
	op   Operator
	cmp  string
}

// prepare chooses how the group's constraints are evaluated.
func (p *placer) prepare(g *spec) {
	g.matches = make([][]bool, len(g.constraints))
	if g.node != "" && !p.opt.noDriver {
		// Pinned: its node is the only candidate, on which the
		// constraints are evaluated directly.
		g.driver, g.useDriver = nil, true
		if i, ok := p.index[g.node]; ok {
			g.driver = []int32{i}
		}
		return
	}
	if !p.opt.noDriver {
		for _, c := range g.constraints {
			if c.Op != Equal {
				continue
			}
			if nodes := p.nodesWithValue(c); !g.useDriver || len(nodes) < len(g.driver) {
				g.driver, g.useDriver = nodes, true
			}
		}
	}
	if g.useDriver && len(g.driver)*8 < len(p.nodes) {
		// Few candidates: evaluate the constraints on each.
		return
	}
	for j, c := range g.constraints {
		g.matches[j] = p.matches(c)
	}
}

// matches returns which nodes meet constraint c, or nil if the cache is
// full.
func (p *placer) matches(c Constraint) []bool {
	k := constraintKey{c.attr, c.Op, c.cmp}
	if m, ok := p.matchCache[k]; ok {
		return m
	}
	if len(p.matchCache) >= maxCachedConstraints {
		return nil
	}
	m := make([]bool, len(p.nodes))
	for i := range p.nodes {
		m[i] = c.Matches(p.nodes[i].n)
	}
	p.matchCache[k] = m
	return m
}

// nodesWithValue returns the nodes whose value of c's attribute equals
// c's value (as Matches compares them), in index order.
func (p *placer) nodesWithValue(c Constraint) []int32 {
	idx, ok := p.valueIndex[c.attr]
	if !ok {
		idx = make(map[string][]int32)
		for i := range p.nodes {
			k := p.indexKey(c.attr, c.attr.value(p.nodes[i].n))
			idx[k] = append(idx[k], int32(i))
		}
		p.valueIndex[c.attr] = idx
	}
	return idx[p.indexKey(c.attr, c.cmp)]
}

// indexKey maps the values Matches considers equal to one key.
func (p *placer) indexKey(a attribute, v string) string {
	if a.kind == attrArch {
		return normArch(v)
	}
	return foldKey(v)
}

// foldKey maps strings that strings.EqualFold considers equal to one key:
// each rune becomes the smallest rune of its case-folding orbit, except
// that an ASCII upper-case letter becomes lower case, so that lower-case
// ASCII strings (the usual label values) are their own keys.
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		// An ASCII letter's orbit has its upper and lower case (and
		// maybe a non-ASCII rune, as U+212A KELVIN SIGN for k): the
		// smallest is the upper case, which becomes lower case below.
		return strings.ToLower(s)
	}
	var sb strings.Builder
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		if 'A' <= m && m <= 'Z' {
			m += 'a' - 'A'
		}
		sb.WriteRune(m)
	}
	return sb.String()
}
