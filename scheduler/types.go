package scheduler

import "strconv"

// Availability says whether a node takes new tasks.
type Availability int

const (
	// Active nodes take new tasks.
	Active Availability = iota
	// Pause keeps a node's tasks running but gives it no new ones.
	Pause
	// Drain gives a node no new tasks; the orchestrator moves its tasks away.
	Drain
)

func (a Availability) String() string {
	switch a {
	case Active:
		return "active"
	case Pause:
		return "pause"
	case Drain:
		return "drain"
	}
	return "Availability(" + strconv.Itoa(int(a)) + ")"
}

// Strategy is how a task chooses among the nodes that can take it, after
// placement preferences and recent failures.
type Strategy int

const (
	// Spread (the default) prefers the node with the fewest tasks of the
	// service, then the fewest tasks overall.
	Spread Strategy = iota
	// Binpack prefers the fullest node that still fits, filling nodes
	// before using empty ones: the highest dominant share of reserved
	// CPU or memory, then the most tasks. With no reservations and no
	// MaxReplicasPerNode, every task of a group goes to one node.
	Binpack
)

func (s Strategy) String() string {
	switch s {
	case Spread:
		return "spread"
	case Binpack:
		return "binpack"
	}
	return "Strategy(" + strconv.Itoa(int(s)) + ")"
}

// Node is what the scheduler knows of one node. IDs must be unique; a
// repeated ID is ignored after its first occurrence.
type Node struct {
	ID, Hostname string
	Role         string // "manager" or "worker"
	Ready        bool
	Availability Availability
	Labels       map[string]string // node labels set by the operator
	EngineLabels map[string]string // labels the node reports about itself
	OS, Arch     string            // e.g. "linux", "amd64"

	// NanoCPUs and MemoryBytes are the capacity tasks may reserve. Zero
	// means nothing can be reserved: a task that reserves any CPU (or
	// memory) never fits there, while a task reserving none always does,
	// even on a node whose reservations already exceed its capacity.
	NanoCPUs, MemoryBytes int64
	// ReservedNanoCPUs and ReservedMemory are already reserved by the
	// tasks on the node.
	ReservedNanoCPUs, ReservedMemory int64

	Tasks          int             // non-terminal tasks on the node
	ServiceTasks   map[string]int  // non-terminal tasks on the node, per service ID
	HostPorts      map[string]bool // host-mode published ports in use, "8080/tcp"
	RecentFailures map[string]int  // per service ID: its tasks that failed here recently
}

// Task is one task to place. Tasks of one service with the same
// scheduling fields form a group that is placed together.
type Task struct {
	ID, ServiceID string

	// Constraints must all hold, e.g. "node.labels.zone==eu",
	// "node.role!=manager"; see ParseConstraint.
	Constraints []string
	// Preferences are spread descriptors, outermost first, e.g.
	// "node.labels.zone" then "node.labels.rack" (a "spread=" prefix, as
	// in docker service create --placement-pref, is accepted). Any
	// constraint key may be used.
	Preferences []string
	// Platforms are "os/arch" pairs the task's image runs on (either
	// part may be empty: any); a node must be of one of them. Empty:
	// any node. Architectures are compared by their Go names (x86_64 is
	// amd64).
	Platforms []string

	ReserveNanoCPUs, ReserveMemory int64
	HostPorts                      []string // host-mode published ports, "8080/tcp"
	MaxReplicasPerNode             int64    // 0 = unlimited
	Strategy                       Strategy

	// Node, if set, is the one node the task may go to: a global
	// service's task, made for its node. The filters run on that node
	// alone, and an unplaced task's reason is about it ("node x lacks
	// 1 GiB of memory").
	Node string
}

// Result is the outcome of Place: every task of the batch is in exactly
// one of the two maps.
type Result struct {
	Placements map[string]string // task ID -> node ID
	Unplaced   map[string]string // task ID -> human reason
}
