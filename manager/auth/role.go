package auth

import (
	"github.com/shoal-run/shoal/internal/tlsutil"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// RoleFromProto is the certificate role for a node role of the API.
func RoleFromProto(r shoalv1.NodeRole) tlsutil.Role {
	switch r {
	case shoalv1.NodeRole_NODE_ROLE_MANAGER:
		return tlsutil.RoleManager
	case shoalv1.NodeRole_NODE_ROLE_WORKER:
		return tlsutil.RoleWorker
	}
	return tlsutil.RoleNone
}

// RoleToProto is the API's node role for a certificate role.
func RoleToProto(r tlsutil.Role) shoalv1.NodeRole {
	switch r {
	case tlsutil.RoleManager:
		return shoalv1.NodeRole_NODE_ROLE_MANAGER
	case tlsutil.RoleWorker:
		return shoalv1.NodeRole_NODE_ROLE_WORKER
	}
	return shoalv1.NodeRole_NODE_ROLE_UNSPECIFIED
}
