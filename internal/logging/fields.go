package logging

import (
	"fmt"

	"go.uber.org/zap"
)

// Fields with stable keys, shared by the components that log the same
// things.

// Node names the node a log line is about.
func Node(id string) zap.Field { return zap.String("node", id) }

// Role names a node role (shoalv1.NodeRole).
func Role(r fmt.Stringer) zap.Field { return zap.String("role", r.String()) }
