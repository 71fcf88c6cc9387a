package caserver

import (
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/ca"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestRoleForToken(t *testing.T) {
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	digest := root.Digest
	worker, manager := ca.NewToken(digest).String(), ca.NewToken(digest).String()
	c := &shoalv1.Cluster{RootCa: &shoalv1.RootCA{Digest: digest}, JoinTokens: &shoalv1.JoinTokens{Worker: worker, Manager: manager}}
	for _, tc := range []struct {
		name  string
		token string
		want  shoalv1.NodeRole
		err   string // part of the error; "" for none
	}{
		{"worker token", worker, shoalv1.NodeRole_NODE_ROLE_WORKER, ""},
		{"manager token", manager, shoalv1.NodeRole_NODE_ROLE_MANAGER, ""},
		{"another cluster's token", ca.NewToken(other.Digest).String(), 0, "different cluster"},
		{"a rotated token", ca.NewToken(digest).String(), 0, "rotated"},
	} {
		got, err := roleForToken(c, tc.token)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s: roleForToken = %v, %v; want %v", tc.name, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errdefs.Is(err, errdefs.ErrPermissionDenied)):
			t.Errorf("%s: roleForToken = %v, %v; want a permission error saying %q", tc.name, got, err, tc.err)
		}
	}
	if _, err := roleForToken(c, "not-a-token"); err == nil {
		t.Error("roleForToken(not-a-token) = nil error; want the token refused")
	}
}
