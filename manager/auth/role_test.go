package auth

import (
	"testing"

	"github.com/shoal-run/shoal/internal/tlsutil"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestRoleConversion(t *testing.T) {
	for _, tc := range []struct {
		proto shoalv1.NodeRole
		cert  tlsutil.Role
	}{
		{shoalv1.NodeRole_NODE_ROLE_UNSPECIFIED, tlsutil.RoleNone},
		{shoalv1.NodeRole_NODE_ROLE_WORKER, tlsutil.RoleWorker},
		{shoalv1.NodeRole_NODE_ROLE_MANAGER, tlsutil.RoleManager},
	} {
		if got := RoleFromProto(tc.proto); got != tc.cert {
			t.Errorf("RoleFromProto(%v) = %v; want %v", tc.proto, got, tc.cert)
		}
		if got := RoleToProto(tc.cert); got != tc.proto {
			t.Errorf("RoleToProto(%v) = %v; want %v", tc.cert, got, tc.proto)
		}
	}
	// A value the enum does not name has no role.
	if got := RoleFromProto(shoalv1.NodeRole(42)); got != tlsutil.RoleNone {
		t.Errorf("RoleFromProto(42) = %v; want none", got)
	}
	if got := RoleToProto(tlsutil.Role(42)); got != shoalv1.NodeRole_NODE_ROLE_UNSPECIFIED {
		t.Errorf("RoleToProto(42) = %v; want unspecified", got)
	}
}
