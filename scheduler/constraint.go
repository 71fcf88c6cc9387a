package scheduler

import (
	"errors"
	"fmt"
	"strings"
)

// Operator is the comparison of a Constraint.
type Operator int

const (
	Equal    Operator = iota // ==
	NotEqual                 // !=
)

func (o Operator) String() string {
	if o == NotEqual {
		return "!="
	}
	return "=="
}

// Constraint is one parsed placement constraint, "key==value" or
// "key!=value".
//
// Keys: node.id, node.hostname, node.role, node.platform.os,
// node.platform.arch, node.labels.<name> and engine.labels.<name>. The
// fixed keys and the label prefixes are case-insensitive; label names are
// case-sensitive, as in Docker.
//
// Values are compared case-insensitively for every key (as swarmkit does:
// "node.role==Manager" and "node.labels.zone==EU" match "manager" and "eu").
// node.platform.arch also treats the usual aliases as equal (x86_64 = amd64,
// aarch64 = arm64, i386 = i686 = 386). A node without the label (or
// without the attribute) has the value "": "node.labels.zone!=eu" holds
// on it and "node.labels.zone==eu" does not.
type Constraint struct {
	Key   string // canonical key: fixed keys lower-case, label names as written
	Op    Operator
	Value string

	attr attribute
	cmp  string // Value as compared: the normalized architecture for node.platform.arch
}

// ParseConstraint parses "key==value" or "key!=value" (spaces around the
// operator are allowed). The error names the constraint and says what is
// wrong with it.
func ParseConstraint(s string) (Constraint, error) {
	expr := strings.TrimSpace(s)
	i, op := operatorIndex(expr)
	if i < 0 {
		return Constraint{}, fmt.Errorf("invalid constraint %q: want key==value or key!=value, e.g. node.labels.zone==eu", s)
	}
	key, value := strings.TrimSpace(expr[:i]), strings.TrimSpace(expr[i+2:])
	if key == "" {
		return Constraint{}, fmt.Errorf("invalid constraint %q: no key before %s", s, op)
	}
	attr, canon, err := parseAttribute(key)
	if err != nil {
		return Constraint{}, fmt.Errorf("invalid constraint %q: %v", s, err)
	}
	if value == "" {
		return Constraint{}, fmt.Errorf("invalid constraint %q: no value after %s", s, op)
	}
	if j := strings.IndexAny(value, forbiddenChars); j >= 0 {
		return Constraint{}, fmt.Errorf("invalid constraint %q: value %q contains %q; only one == or != is allowed", s, value, value[j])
	}
	if attr.kind == attrRole && !strings.EqualFold(value, "manager") && !strings.EqualFold(value, "worker") {
		return Constraint{}, fmt.Errorf("invalid constraint %q: node.role is manager or worker, not %q", s, value)
	}
	c := Constraint{Key: canon, Op: op, Value: value, attr: attr, cmp: value}
	if attr.kind == attrArch {
		c.cmp = normArch(value)
	}
	return c, nil
}

// String returns the constraint as key, operator, value without spaces.
func (c Constraint) String() string { return c.Key + c.Op.String() + c.Value }

// Matches reports whether node n meets the constraint.
func (c Constraint) Matches(n *Node) bool {
	if c.attr.kind == attrInvalid {
		// Built by hand rather than by ParseConstraint.
		p, err := ParseConstraint(c.String())
		if err != nil {
			return false
		}
		c = p
	}
	v := c.attr.value(n)
	var eq bool
	if c.attr.kind == attrArch {
		eq = normArch(v) == c.cmp
	} else {
		eq = strings.EqualFold(v, c.cmp)
	}
	return eq == (c.Op == Equal)
}

// forbiddenChars may not appear in values or label names: they are, or may
// become, operators.
const forbiddenChars = "=!<>~"

// operatorIndex returns the position of the first "==" or "!=" in s.
func operatorIndex(s string) (int, Operator) {
	eq, ne := strings.Index(s, "=="), strings.Index(s, "!=")
	switch {
	case eq < 0 && ne < 0:
		return -1, Equal
	case ne < 0 || (eq >= 0 && eq < ne):
		return eq, Equal
	default:
		return ne, NotEqual
	}
}

// attribute is a property of a node that constraints compare and
// preferences spread over.
type attribute struct {
	kind  attrKind
	label string // for attrNodeLabel and attrEngineLabel
}

type attrKind uint8

const (
	attrInvalid attrKind = iota
	attrID
	attrHostname
	attrRole
	attrOS
	attrArch
	attrNodeLabel
	attrEngineLabel
)

var fixedKeys = []struct {
	key  string
	kind attrKind
}{
	{"node.id", attrID},
	{"node.hostname", attrHostname},
	{"node.role", attrRole},
	{"node.platform.os", attrOS},
	{"node.platform.arch", attrArch},
}

const (
	nodeLabelPrefix   = "node.labels."
	engineLabelPrefix = "engine.labels."
	keyList           = "node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>"
)

// parseAttribute parses a constraint key or spread descriptor and returns
// it with its canonical spelling.
func parseAttribute(key string) (attribute, string, error) {
	for _, f := range fixedKeys {
		if strings.EqualFold(key, f.key) {
			return attribute{kind: f.kind}, f.key, nil
		}
	}
	for _, p := range []struct {
		prefix string
		kind   attrKind
	}{{nodeLabelPrefix, attrNodeLabel}, {engineLabelPrefix, attrEngineLabel}} {
		if len(key) < len(p.prefix) || !strings.EqualFold(key[:len(p.prefix)], p.prefix) {
			continue
		}
		name := key[len(p.prefix):]
		if name == "" {
			return attribute{}, "", fmt.Errorf("no label name after %s", p.prefix)
		}
		if j := strings.IndexAny(name, forbiddenChars+" \t\r\n"); j >= 0 {
			return attribute{}, "", fmt.Errorf("label name %q contains %q", name, name[j])
		}
		return attribute{kind: p.kind, label: name}, p.prefix + name, nil
	}
	return attribute{}, "", fmt.Errorf("unknown key %q; want %s", key, keyList)
}

// value returns the node's value of the attribute, "" when it has none.
func (a attribute) value(n *Node) string {
	switch a.kind {
	case attrID:
		return n.ID
	case attrHostname:
		return n.Hostname
	case attrRole:
		return n.Role
	case attrOS:
		return n.OS
	case attrArch:
		return n.Arch
	case attrNodeLabel:
		return n.Labels[a.label]
	case attrEngineLabel:
		return n.EngineLabels[a.label]
	}
	return ""
}

// normArch lower-cases an architecture and maps common aliases to Go's
// names.
func normArch(a string) string {
	a = strings.ToLower(a)
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	case "i386", "i686":
		return "386"
	}
	return a
}

// parsePreference parses a spread descriptor such as "node.labels.zone"
// or "spread=node.labels.zone".
func parsePreference(s string) (attribute, error) {
	d := strings.TrimSpace(s)
	const spread = "spread="
	if len(d) >= len(spread) && strings.EqualFold(d[:len(spread)], spread) {
		d = strings.TrimSpace(d[len(spread):])
	}
	if d == "" {
		return attribute{}, fmt.Errorf("invalid placement preference %q: %w", s, errEmptyDescriptor)
	}
	a, _, err := parseAttribute(d)
	if err != nil {
		return attribute{}, fmt.Errorf("invalid placement preference %q: %v", s, err)
	}
	return a, nil
}

var errEmptyDescriptor = errors.New("want a spread descriptor such as node.labels.zone")
