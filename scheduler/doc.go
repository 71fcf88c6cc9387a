// Package scheduler decides which node each task runs on.
//
// It is a pure function of its input: Place takes a snapshot of the nodes
// (with what is already reserved and running on them), a batch of tasks and
// a seed, and returns a placement or a human reason for every task. It does
// no I/O, reads no clock and no global randomness, imports nothing of gRPC,
// Raft or the store, and never modifies its arguments; the same input and
// seed always give the same Result. The caller (the manager's scheduling
// loop) converts its store objects into Node and Task values, writes the
// placements in one Raft batch and re-checks them against fresh state.
//
// A task may only go to a node that passes every filter, in this order:
// the node is ready, its availability is Active, it meets the task's
// constraints, it has the CPU and memory the task reserves free, none of the
// task's host-mode ports is in use there, and it runs fewer than the task's
// MaxReplicasPerNode tasks of the service. A task pinned to a node (Task.Node,
// a global service's) may go only there, and its reason names that node.
// Among those nodes, placement
// preferences come first (spread over label values, hierarchically), then
// fewer recent failures of the service, then the Strategy: Spread prefers
// fewer tasks of the service and then fewer tasks overall; Binpack prefers
// the fullest node that still fits. Remaining ties are broken by a hash of
// the seed and the node ID.
//
// See README.md for the algorithm and its cost.
package scheduler
