package controlapi

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func withAutolock(spec *shoalv1.ClusterSpec, on bool) *shoalv1.ClusterSpec {
	spec = proto.Clone(spec).(*shoalv1.ClusterSpec)
	spec.Encryption = &shoalv1.EncryptionConfig{AutoLockManagers: on}
	return spec
}

// TestUpdateClusterUnlockKey walks autolock through its changes: each
// step starts from the stored cluster of the previous one.
func TestUpdateClusterUnlockKey(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	seed(t, r, testCluster())

	type step struct {
		name     string
		autolock *bool // nil: no spec in the request
		rotate   bool
		wantKey  string
		wantErr  string
	}
	on, off := true, false
	for _, st := range []step{
		{name: "rotate while off", rotate: true, wantErr: "cannot rotate because autolock is not turned on"},
		{name: "off stays off", autolock: &off, wantKey: ""},
		{name: "turn on makes a key", autolock: &on, wantKey: "SHOALKEY-1-test1"},
		{name: "on stays on keeps the key", autolock: &on, wantKey: "SHOALKEY-1-test1"},
		{name: "token rotation keeps the key", wantKey: "SHOALKEY-1-test1"},
		{name: "rotate makes a new key", rotate: true, wantKey: "SHOALKEY-1-test2"},
		{name: "rotate with spec on", autolock: &on, rotate: true, wantKey: "SHOALKEY-1-test3"},
		{name: "turn off drops the key", autolock: &off, wantKey: ""},
		{name: "rotate and turn off", autolock: &off, rotate: true, wantErr: "cannot rotate because autolock is not turned on"},
		{name: "turn on again makes another key", autolock: &on, wantKey: "SHOALKEY-1-test4"},
	} {
		cur := storedCluster(t, s)
		req := &shoalv1.UpdateClusterRequest{Version: cur.GetMeta().GetVersion(), RotateUnlockKey: st.rotate, RotateWorkerToken: st.autolock == nil && !st.rotate}
		if st.autolock != nil {
			req.Spec = withAutolock(cur.GetSpec(), *st.autolock)
		}
		resp, err := s.UpdateCluster(ctx, req)
		if st.wantErr != "" {
			if !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), st.wantErr) {
				t.Fatalf("%s: UpdateCluster = %v; want ErrFailedPrecond with %q", st.name, err, st.wantErr)
			}
			if after := storedCluster(t, s); !proto.Equal(after, cur) {
				t.Fatalf("%s: a refused UpdateCluster changed the cluster", st.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: UpdateCluster = %v", st.name, err)
		}
		stored := storedCluster(t, s)
		if got := stored.GetUnlockKey(); got != st.wantKey {
			t.Fatalf("%s: stored unlock key = %q; want %q", st.name, got, st.wantKey)
		}
		if got := resp.GetCluster().GetUnlockKey(); got != "" {
			t.Fatalf("%s: UpdateCluster returned the unlock key %q; want it stripped", st.name, got)
		}
		g, err := s.GetCluster(ctx, &shoalv1.GetClusterRequest{})
		if err != nil || g.GetCluster().GetUnlockKey() != "" {
			t.Fatalf("%s: GetCluster = %v, %v; want no unlock key", st.name, g.GetCluster().GetUnlockKey(), err)
		}
		k, err := s.GetUnlockKey(ctx, &shoalv1.GetUnlockKeyRequest{})
		if err != nil || k.GetUnlockKey() != st.wantKey || k.GetVersion() != stored.GetMeta().GetVersion() {
			t.Fatalf("%s: GetUnlockKey = %v, %v; want %q at version %d", st.name, k, err, st.wantKey, stored.GetMeta().GetVersion())
		}
	}
}

func TestUpdateClusterUnlockKeyGeneratorFails(t *testing.T) {
	s, r := newTestServer(t)
	seed(t, r, testCluster())
	s.NewUnlockKey = func() (string, error) { return "", errors.New("no entropy") }
	cur := storedCluster(t, s)
	_, err := s.UpdateCluster(context.Background(), &shoalv1.UpdateClusterRequest{Version: cur.GetMeta().GetVersion(), Spec: withAutolock(cur.GetSpec(), true)})
	if err == nil || !strings.Contains(err.Error(), "no entropy") {
		t.Fatalf("UpdateCluster with a failing key generator = %v; want its error", err)
	}
	if after := storedCluster(t, s); !proto.Equal(after, cur) {
		t.Fatalf("a failed UpdateCluster changed the cluster")
	}
}

func TestGetUnlockKeyBeforeInit(t *testing.T) {
	s, _ := newTestServer(t)
	if _, err := s.GetUnlockKey(context.Background(), &shoalv1.GetUnlockKeyRequest{}); !errdefs.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("GetUnlockKey() before init = %v; want ErrUnavailable", err)
	}
}
