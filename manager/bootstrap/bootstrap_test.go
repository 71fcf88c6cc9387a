package bootstrap

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/ca"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// now is the wall clock: NewIdentity checks the certificate against it.
var now = time.Now().UTC().Truncate(time.Second)

func config(req *shoalv1.InitRequest) Config {
	return Config{Request: req, Addr: "10.0.0.1:4242", RaftAddr: "10.0.0.1:4243", Host: "10.0.0.1",
		Description: &shoalv1.NodeDescription{Hostname: "m1"}, Now: now}
}

// A wrong choice at swarm init is refused with the flag's name, before
// anything is made.
func TestNewRefusesBadChoices(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  *shoalv1.InitRequest
		want string
	}{
		{"cert expiry too short", &shoalv1.InitRequest{CertExpiry: durationpb.New(time.Second)}, "cert-expiry: must be at least 5s, got 1s"},
		{"negative task history", &shoalv1.InitRequest{TaskHistoryLimit: -1}, "task-history-limit: must be >= 0, got -1"},
		{"bad address pool", &shoalv1.InitRequest{DefaultAddrPools: []string{"10.0.0.0/33"}}, "default-addr-pool: "},
	} {
		c, err := New(config(tc.req))
		if err == nil || c != nil || !strings.HasPrefix(err.Error(), tc.want) || !errdefs.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: New() made a cluster: %v, error %v; want none and an invalid-argument error starting %q", tc.name, c != nil, err, tc.want)
		}
	}
}

// The first objects hold together: the first manager's certificate is
// signed by the cluster's root for this node and cluster with the manager
// role; the join tokens pin that root; defaults apply where the user chose
// nothing.
func TestNewMakesTheFirstObjects(t *testing.T) {
	for _, tc := range []struct {
		name        string
		req         *shoalv1.InitRequest
		history     int64
		expiry      time.Duration
		wantExpires time.Time
	}{
		{"defaults", &shoalv1.InitRequest{}, defaults.TaskHistoryLimit, ca.DefaultNodeCertExpiry, now.Add(ca.DefaultNodeCertExpiry)},
		{"chosen", &shoalv1.InitRequest{TaskHistoryLimit: 2, CertExpiry: durationpb.New(time.Hour)}, 2, time.Hour, now.Add(time.Hour)},
	} {
		c, err := New(config(tc.req))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		spec := c.Cluster.GetSpec()
		if spec.GetTaskHistoryLimit() != tc.history || spec.GetNodeCertExpiry().AsDuration() != tc.expiry {
			t.Errorf("%s: history %d, expiry %s; want %d, %s", tc.name, spec.GetTaskHistoryLimit(), spec.GetNodeCertExpiry().AsDuration(), tc.history, tc.expiry)
		}
		id, err := tlsutil.NewIdentity(c.Cluster.GetRootCa().GetCertPem(), c.CertPEM, c.KeyPEM)
		if err != nil {
			t.Fatalf("%s: the certificate does not chain to the root: %v", tc.name, err)
		}
		if id.NodeID() != c.Node.GetId() || id.Role() != tlsutil.RoleManager || !id.Leaf().NotAfter.Equal(tc.wantExpires) {
			t.Errorf("%s: certificate for %s as %v until %s; want %s as manager until %s", tc.name, id.NodeID(), id.Role(), id.Leaf().NotAfter, c.Node.GetId(), tc.wantExpires)
		}
		for _, tok := range []string{c.Cluster.GetJoinTokens().GetWorker(), c.Cluster.GetJoinTokens().GetManager()} {
			p, err := ca.ParseToken(tok)
			if err != nil || p.Digest != c.Cluster.GetRootCa().GetDigest() {
				t.Errorf("%s: token %q (%v) does not pin the root %s", tc.name, tok, err, c.Cluster.GetRootCa().GetDigest())
			}
		}
		if c.Cluster.GetJoinTokens().GetWorker() == c.Cluster.GetJoinTokens().GetManager() {
			t.Errorf("%s: the worker and manager tokens are the same", tc.name)
		}
		if len(c.Cluster.GetGossipKeys()) != 1 || len(c.Cluster.GetGossipKeys()[0]) != 32 {
			t.Errorf("%s: gossip keys %d; want one 32-byte key", tc.name, len(c.Cluster.GetGossipKeys()))
		}
		n := c.Node
		if n.GetStatus().GetAddr() != "10.0.0.1" || n.GetManagerStatus().GetRaftAddr() != "10.0.0.1:4243" || n.GetDescription().GetHostname() != "m1" ||
			n.GetSpec().GetDesiredRole() != shoalv1.NodeRole_NODE_ROLE_MANAGER {
			t.Errorf("%s: first node %v", tc.name, n)
		}
	}
}
