package controlapi

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

var caKey = []byte("-----BEGIN EC PRIVATE KEY-----\nsecret\n-----END EC PRIVATE KEY-----\n")

func testCluster() *shoalv1.Cluster {
	return &shoalv1.Cluster{
		Id:   "cluster1",
		Spec: &shoalv1.ClusterSpec{Name: "default", TaskHistoryLimit: 5, NodeCertExpiry: durationpb.New(90 * 24 * time.Hour)},
		RootCa: &shoalv1.RootCA{
			CertPem: []byte("-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n"),
			KeyPem:  caKey,
			Digest:  "dgst",
		},
		JoinTokens: &shoalv1.JoinTokens{Worker: "SWMTKN-1-dgst-worker0", Manager: "SWMTKN-1-dgst-manager0"},
		GossipKeys: [][]byte{gossipKey},
	}
}

var gossipKey = bytes.Repeat([]byte{7}, 32)

func storedCluster(t *testing.T, s *Server) *shoalv1.Cluster {
	t.Helper()
	var c *shoalv1.Cluster
	s.Store.View(func(r store.ReadTx) { c = store.Get[*shoalv1.Cluster](r, store.TableCluster, "cluster1") })
	if c == nil {
		t.Fatal("no cluster in the store")
	}
	return c
}

func TestGetClusterHidesCAKey(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	if _, err := s.GetCluster(ctx, &shoalv1.GetClusterRequest{}); !errdefs.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("GetCluster() before init = %v; want ErrUnavailable", err)
	}
	seed(t, r, testCluster())

	resp, err := s.GetCluster(ctx, &shoalv1.GetClusterRequest{})
	if err != nil {
		t.Fatalf("GetCluster() = %v", err)
	}
	c := resp.GetCluster()
	if len(c.GetRootCa().GetKeyPem()) != 0 {
		t.Errorf("GetCluster() returned the CA key %q; want none", c.GetRootCa().GetKeyPem())
	}
	if len(c.GetGossipKeys()) != 0 {
		t.Errorf("GetCluster() returned gossip keys %x; want none", c.GetGossipKeys())
	}
	if got := storedCluster(t, s).GetGossipKeys(); len(got) != 1 || !bytes.Equal(got[0], gossipKey) {
		t.Errorf("after GetCluster the stored gossip keys = %x; want them kept", got)
	}
	if len(c.GetRootCa().GetCertPem()) == 0 || c.GetRootCa().GetDigest() != "dgst" || c.GetJoinTokens().GetWorker() != "SWMTKN-1-dgst-worker0" {
		t.Errorf("GetCluster() = %v; want the certificate, digest and tokens", c)
	}
	if c.GetMeta().GetVersion() == 0 {
		t.Errorf("GetCluster() version = 0; want the stored version")
	}
	// Redacting the answer must not redact the store.
	if got := storedCluster(t, s).GetRootCa().GetKeyPem(); !bytes.Equal(got, caKey) {
		t.Errorf("after GetCluster the stored CA key = %q; want it kept", got)
	}
}

func TestUpdateClusterRotatesTokens(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		worker, manager        bool
		wantWorker, wantManger string
	}{
		{"worker", true, false, "SWMTKN-1-dgst-new1", "SWMTKN-1-dgst-manager0"},
		{"manager", false, true, "SWMTKN-1-dgst-worker0", "SWMTKN-1-dgst-new1"},
		{"both", true, true, "SWMTKN-1-dgst-new1", "SWMTKN-1-dgst-new2"},
		{"neither", false, false, "SWMTKN-1-dgst-worker0", "SWMTKN-1-dgst-manager0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, r := newTestServer(t)
			seed(t, r, testCluster())
			cur := storedCluster(t, s)
			resp, err := s.UpdateCluster(context.Background(), &shoalv1.UpdateClusterRequest{
				Version: cur.GetMeta().GetVersion(), RotateWorkerToken: tc.worker, RotateManagerToken: tc.manager,
			})
			if err != nil {
				t.Fatalf("UpdateCluster(rotate worker=%v manager=%v) = %v", tc.worker, tc.manager, err)
			}
			stored := storedCluster(t, s)
			for _, c := range []*shoalv1.Cluster{resp.GetCluster(), stored} {
				if c.GetJoinTokens().GetWorker() != tc.wantWorker || c.GetJoinTokens().GetManager() != tc.wantManger {
					t.Errorf("UpdateCluster(rotate worker=%v manager=%v) tokens = %v; want worker %q manager %q",
						tc.worker, tc.manager, c.GetJoinTokens(), tc.wantWorker, tc.wantManger)
				}
			}
			if len(resp.GetCluster().GetRootCa().GetKeyPem()) != 0 {
				t.Errorf("UpdateCluster returned the CA key")
			}
			if !bytes.Equal(stored.GetRootCa().GetKeyPem(), caKey) {
				t.Errorf("UpdateCluster lost the stored CA key: %q", stored.GetRootCa().GetKeyPem())
			}
			if v := resp.GetCluster().GetMeta().GetVersion(); v != stored.GetMeta().GetVersion() || v <= cur.GetMeta().GetVersion() {
				t.Errorf("UpdateCluster version = %d; want the new stored version %d > %d", v, stored.GetMeta().GetVersion(), cur.GetMeta().GetVersion())
			}
			if !stored.GetMeta().GetUpdatedAt().AsTime().Equal(testNow) {
				t.Errorf("updated_at = %v; want %v", stored.GetMeta().GetUpdatedAt().AsTime(), testNow)
			}
		})
	}
}

func TestUpdateClusterSpec(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	seed(t, r, testCluster())
	cur := storedCluster(t, s)

	for _, tc := range []struct {
		spec *shoalv1.ClusterSpec
		want string
	}{
		{&shoalv1.ClusterSpec{TaskHistoryLimit: -1}, "cluster.task_history_limit: must be >= 0, got -1"},
		{&shoalv1.ClusterSpec{NodeCertExpiry: durationpb.New(time.Second)}, "cluster.cert_expiry: must be at least 5s, got 1s"},
	} {
		_, err := s.UpdateCluster(ctx, &shoalv1.UpdateClusterRequest{Version: cur.GetMeta().GetVersion(), Spec: tc.spec})
		if !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("UpdateCluster(%v) = %v; want ErrInvalid with %q", tc.spec, err, tc.want)
		}
	}
	if got := storedCluster(t, s); !proto.Equal(got, cur) {
		t.Errorf("refused updates changed the cluster to %v", got)
	}

	// A valid spec is stored, but the cluster keeps its name.
	resp, err := s.UpdateCluster(ctx, &shoalv1.UpdateClusterRequest{Version: cur.GetMeta().GetVersion(), Spec: &shoalv1.ClusterSpec{
		Name: "renamed", TaskHistoryLimit: 2, NodeCertExpiry: durationpb.New(time.Hour),
	}})
	if err != nil {
		t.Fatalf("UpdateCluster(valid spec) = %v", err)
	}
	got := storedCluster(t, s).GetSpec()
	if got.GetName() != "default" || got.GetTaskHistoryLimit() != 2 || got.GetNodeCertExpiry().AsDuration() != time.Hour {
		t.Errorf("stored cluster spec = %v; want name default, history 2, expiry 1h", got)
	}
	if !proto.Equal(resp.GetCluster().GetSpec(), got) {
		t.Errorf("UpdateCluster returned spec %v; stored %v", resp.GetCluster().GetSpec(), got)
	}

	// The version read before that update is now stale.
	before := storedCluster(t, s)
	_, err = s.UpdateCluster(ctx, &shoalv1.UpdateClusterRequest{Version: cur.GetMeta().GetVersion(), RotateWorkerToken: true})
	if !errdefs.Is(err, errdefs.ErrConflict) {
		t.Errorf("UpdateCluster(stale version) = %v; want ErrConflict", err)
	}
	if after := storedCluster(t, s); !proto.Equal(after, before) {
		t.Errorf("a stale UpdateCluster changed the cluster: %v", after.GetJoinTokens())
	}
}
