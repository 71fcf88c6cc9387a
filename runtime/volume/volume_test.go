package volume

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/runtime/container"
)

func TestCheckNameAndOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"data", true}, {"db_1.x-y", true}, {"a", false}, {"-a", false}, {"a/b", false}, {"../x", false}, {"", false}} {
		if err := CheckName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}, ""},
		{map[string]string{"type": "none", "device": "/srv", "o": "bind"}, ""},
		{map[string]string{"type": "none", "device": "/srv"}, "o=bind"},
		{map[string]string{"type": "none", "device": "srv", "o": "bind"}, "absolute"},
		{map[string]string{"device": "tmpfs"}, `"type"`},
		{map[string]string{"type": "tmpfs"}, `"device"`},
		{map[string]string{"size": "1"}, "invalid option"},
	} {
		err := checkOptions(tc.opts)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkOptions(%v) = %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestStoreLifecycle(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Create("data", "", map[string]string{"app": "db"}, nil)
	if err != nil || v.Mountpoint != filepath.Join(root, "data", "_data") || v.Driver != DriverLocal {
		t.Fatalf("create: %+v %v", v, err)
	}
	if _, err := s.Create("data", "", nil, nil); err != nil {
		t.Fatalf("create again (same options) is not idempotent: %v", err)
	}
	if _, err := s.Create("data", "", nil, map[string]string{"type": "tmpfs", "device": "tmpfs"}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("create with other options: %v", err)
	}
	if _, err := s.Create("x", "nfs-plugin", nil, nil); err == nil {
		t.Fatal("another driver accepted")
	}
	name, path, populate, err := s.Use("c1", container.Mount{Type: container.MountVolume, Source: "data", Target: "/d"})
	if err != nil || name != "data" || path != v.Mountpoint || !populate {
		t.Fatalf("use: %s %s %v %v", name, path, populate, err)
	}
	if err := s.Populated("data"); err != nil {
		t.Fatal(err)
	}
	if _, _, populate, _ := s.Use("c2", container.Mount{Type: container.MountVolume, Source: "data", Target: "/d"}); populate {
		t.Fatal("a populated volume asks to be populated again")
	}
	anon, _, _, err := s.Use("c1", container.Mount{Type: container.MountVolume, Target: "/cache"})
	if err != nil || len(anon) != 64 {
		t.Fatalf("anonymous volume: %q %v", anon, err)
	}
	if err := s.Remove("data", false); err == nil || !strings.Contains(err.Error(), "volume is in use - [c1, c2]") {
		t.Fatalf("remove in use: %v", err)
	}
	if err := os.WriteFile(filepath.Join(path, "f"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A new store over the same root: volumes and populated flags kept,
	// uses come back from the containers (Adopt).
	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	s2.Adopt("c1", []string{"data", anon, "gone"})
	got, err := s2.Get("data")
	if err != nil || got.Labels["app"] != "db" || !got.Populated || len(got.Containers) != 1 {
		t.Fatalf("reopened: %+v %v", got, err)
	}
	// Release without remove keeps the anonymous volume; with remove
	// (the container was deleted) it goes.
	if err := s2.Release("c1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get(anon); err != nil {
		t.Fatalf("anonymous volume gone on a release without remove: %v", err)
	}
	s2.Adopt("c1", []string{anon})
	if err := s2.Release("c1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get(anon); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("anonymous volume after its container's removal: %v", err)
	}
	if _, err := s2.Create("spare", "", map[string]string{"keep": "no"}, nil); err != nil {
		t.Fatal(err)
	}
	if removed, _, err := s2.Prune(false, nil); err != nil || len(removed) != 0 {
		t.Fatalf("prune without all removed named volumes: %v %v", removed, err)
	}
	if removed, _, err := s2.Prune(true, []string{"keep=yes"}); err != nil || len(removed) != 0 {
		t.Fatalf("prune with a label filter: %v %v", removed, err)
	}
	removed, n, err := s2.Prune(true, []string{"keep"})
	if err != nil || len(removed) != 1 || removed[0] != "spare" {
		t.Fatalf("prune: %v %d %v", removed, n, err)
	}
	removed, n, err = s2.Prune(true, nil)
	if err != nil || len(removed) != 1 || removed[0] != "data" || n != 5 {
		t.Fatalf("prune of the released volume: %v %d %v", removed, n, err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	if err := s2.Remove("data", true); err != nil {
		t.Fatalf("rm -f of a missing volume: %v", err)
	}
	if err := s2.Remove("data", false); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("rm of a missing volume: %v", err)
	}
}

// The local driver's tmpfs type is mounted while the volume is used.
func TestTmpfsVolume(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, path, _, err := s.Use("c1", container.Mount{Type: container.MountVolume, Source: "fast", Target: "/d",
		VolumeOptions: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}})
	if err != nil {
		t.Fatal(err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if !strings.Contains(string(mounts), " "+path+" ") {
		t.Fatalf("%s is not a mount while in use", path)
	}
	if err := s.Release("c1", true); err != nil {
		t.Fatal(err)
	}
	mounts, _ = os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), " "+path+" ") {
		t.Fatalf("%s is still mounted when unused", path)
	}
	if err := s.Remove("fast", false); err != nil {
		t.Fatal(err)
	}
}
