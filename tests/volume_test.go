package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// oneContainer waits until svc runs exactly one container on n, and
// returns it.
func oneContainer(t *testing.T, n *harness.Node, svc string, not ...int) harness.Container {
	t.Helper()
	var got harness.Container
	harness.Eventually(t, 60*time.Second, func() error {
		cs := harness.Of(svc, n.RunningContainers())
		if len(cs) != 1 {
			return fmt.Errorf("%s runs %d containers on %s; want 1", svc, len(cs), n.Name)
		}
		for _, pid := range not {
			if cs[0].Pid == pid {
				return fmt.Errorf("%s still runs the old process %d", svc, pid)
			}
		}
		got = cs[0]
		return nil
	})
	return got
}

// inside reads a file of a running container through /proc.
func inside(t *testing.T, c harness.Container, path string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root%s", c.Pid, path))
	if err != nil {
		t.Fatalf("read %s in %s: %v", path, c.Name, err)
	}
	return string(b)
}

// insideBecomes waits until a file of a running container holds want:
// the container's process is alive before its first write lands.
func insideBecomes(t *testing.T, c harness.Container, path, want, when string) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root%s", c.Pid, path))
		if err != nil {
			return fmt.Errorf("read %s in %s %s: %v", path, c.Name, when, err)
		}
		if string(b) != want {
			return fmt.Errorf("%s = %q %s; want %q", path, b, when, want)
		}
		return nil
	})
}

type volumeJSON struct {
	Name       string            `json:"name"`
	Mountpoint string            `json:"mountpoint"`
	Anonymous  bool              `json:"anonymous"`
	Containers []string          `json:"containers"`
	Labels     map[string]string `json:"labels"`
	NodeID     string            `json:"node_id"`
}

func volumes(t *testing.T, n *harness.Node, args ...string) []volumeJSON {
	t.Helper()
	var out []volumeJSON
	if err := json.Unmarshal([]byte(n.MustCLI(append([]string{"volume", "ls", "--format", "json"}, args...)...)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// A stateful task keeps its data in a named volume across a kill -9 of
// its process, a kill of its node's daemon and a scale to zero and back;
// a new volume gets the image's files unless nocopy; an image's VOLUME
// gets an anonymous volume that goes with its container; a volume in use
// cannot be removed, and prune removes the unused.
func TestVolumeService(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "vol", Files: map[string]string{"/seed/hello": "from the image\n"}, Volumes: []string{"/cache"}})
	c := harness.StartCluster(t, 1, 1)
	m, w := c.Managers[0], c.Workers[0]
	wid := nodeID(t, w)
	script := `echo start >> /data/log; exec sleep 1000`
	m.MustCLI("service", "create", "-d", "--name", "db", "--constraint", "node.id=="+wid,
		"--mount", "type=volume,source=dbdata,target=/data", "--entrypoint", "/bin/sh", img.Ref, "-c", script)
	first := oneContainer(t, w, "db")
	insideBecomes(t, first, "/data/log", "start\n", "after the first start")
	vols := volumes(t, w)
	var db volumeJSON
	for _, v := range vols {
		if v.Name == "dbdata" {
			db = v
		}
	}
	if db.Mountpoint == "" || len(db.Containers) != 1 || db.Containers[0] != first.ID {
		t.Fatalf("volume ls on the worker: %+v; want dbdata used by %s", vols, first.ID)
	}
	if b, err := os.ReadFile(filepath.Join(db.Mountpoint, "log")); err != nil || string(b) != "start\n" {
		t.Fatalf("the volume's directory on the node holds %q (%v)", b, err)
	}

	// kill -9 the workload: restarted in place, the volume kept.
	if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := oneContainer(t, w, "db", first.Pid)
	insideBecomes(t, second, "/data/log", "start\nstart\n", "after a kill -9")
	// Kill the node's daemon and start it again: the data is there.
	w.Kill()
	w.Start()
	if err := syscall.Kill(second.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	third := oneContainer(t, w, "db", second.Pid)
	insideBecomes(t, third, "/data/log", "start\nstart\nstart\n", "after the daemon's restart")
	// Scale to zero and back on the same node: the same volume.
	m.MustCLI("service", "scale", "db=0")
	harness.Eventually(t, 30*time.Second, func() error {
		if n := len(harness.Of("db", w.RunningContainers())); n != 0 {
			return fmt.Errorf("db still runs %d containers", n)
		}
		return nil
	})
	m.MustCLI("service", "scale", "db=1")
	fourth := oneContainer(t, w, "db", third.Pid)
	insideBecomes(t, fourth, "/data/log", "start\nstart\nstart\nstart\n", "after scaling to 0 and back")

	// In use: refused, naming the container; nothing removed.
	out, err := w.CLI("volume", "rm", "dbdata")
	if err == nil || !strings.Contains(err.Error(), "volume is in use - [") || !strings.Contains(err.Error(), fourth.ID) {
		t.Fatalf("volume rm of a volume in use: %v %s", err, out)
	}
	if got := inside(t, fourth, "/data/log"); !strings.HasPrefix(got, "start\n") {
		t.Fatalf("a refused rm changed the data: %q", got)
	}

	// Copy-up from the image, and nocopy; an image VOLUME is anonymous.
	m.MustCLI("service", "create", "-d", "--name", "seeded", "--constraint", "node.id=="+wid,
		"--mount", "type=volume,source=seeded,target=/seed", "--mount", "type=volume,source=empty,target=/seed2,volume-nocopy",
		"--mount", "type=volume,source=empty2,target=/seed3", img.Ref)
	seeded := oneContainer(t, w, "seeded")
	if got := inside(t, seeded, "/seed/hello"); got != "from the image\n" {
		t.Fatalf("a new volume lacks the image's files: /seed/hello = %q", got)
	}
	if entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/root/seed3", seeded.Pid)); err != nil || len(entries) != 0 {
		t.Fatalf("a volume over a path the image lacks: %v %v", entries, err)
	}
	var anon string
	for _, v := range volumes(t, w) {
		switch {
		case v.Name == "empty":
			if entries, err := os.ReadDir(v.Mountpoint); err != nil || len(entries) != 0 {
				t.Fatalf("a nocopy volume has content: %v %v", entries, err)
			}
		case v.Anonymous && len(v.Containers) == 1 && v.Containers[0] == seeded.ID:
			anon = v.Name
		}
	}
	if anon == "" {
		t.Fatalf("the image's VOLUME /cache got no anonymous volume: %+v", volumes(t, w))
	}
	if !strings.Contains(readMounts(t, seeded.Pid), " /cache ") {
		t.Fatal("/cache is not a mount in the container")
	}

	// Through the managers: every node's volumes, with their node.
	harness.Eventually(t, 20*time.Second, func() error {
		for _, v := range volumes(t, m, "--cluster") {
			if v.Name == "seeded" && v.NodeID == wid {
				return nil
			}
		}
		return fmt.Errorf("volume ls --cluster lacks the worker's seeded volume")
	})
	if table := m.MustCLI("volume", "ls", "--cluster"); !strings.Contains(table, "NODE") || !strings.Contains(table, wid) {
		t.Errorf("volume ls --cluster:\n%s", table)
	}

	// The service goes, and its anonymous volume with its container.
	m.MustCLI("service", "rm", "seeded")
	harness.Eventually(t, 30*time.Second, func() error {
		for _, v := range volumes(t, w) {
			if v.Name == anon {
				return fmt.Errorf("the anonymous volume %s outlived its container", anon)
			}
		}
		return nil
	})
	// Prune: unused named volumes go with -a; the one in use stays.
	w.MustCLI("volume", "create", "--label", "keep=no", "spare")
	pruned := w.MustCLI("volume", "prune", "-a", "-f")
	for _, want := range []string{"Deleted Volumes:", "spare", "seeded", "Total reclaimed space:"} {
		if !strings.Contains(pruned, want) {
			t.Errorf("volume prune output lacks %q:\n%s", want, pruned)
		}
	}
	left := map[string]bool{}
	for _, v := range volumes(t, w) {
		left[v.Name] = true
	}
	if !left["dbdata"] || left["spare"] || left["seeded"] {
		t.Fatalf("after prune: %v", left)
	}
}

func readMounts(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Bind mounts (read-only and read-write) and a tmpfs with a size, through
// shoal run; bad mounts are refused before anything runs.
func TestVolumeRunMounts(t *testing.T) {
	needRoot(t)
	n, img := runtimeNode(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "in"), []byte("host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := n.MustCLI("run", "--rm", "-v", host+":/rw", "--mount", "type=bind,source="+host+",target=/ro,readonly",
		"--tmpfs", "/scratch:size=1m", "--entrypoint", "/bin/sh", img.Ref, "-c",
		"cat /ro/in; echo out > /rw/out; touch /ro/x 2>&1; dd if=/dev/zero of=/scratch/f bs=4096 count=1024 2>&1; true")
	for _, want := range []string{"host file", "Read-only file system", "No space left on device"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(host, "out")); err != nil || string(b) != "out\n" {
		t.Errorf("the read-write bind's write: %q %v", b, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-v", "/no/such/dir:/x"}, "bind source path does not exist: /no/such/dir"},
		{[]string{"--mount", "type=bind,source=relative,target=/x"}, "must be absolute"},
		{[]string{"--mount", "type=volume,source=bad/name,target=/x"}, "invalid characters for a local volume name"},
		{[]string{"--mount", "type=volume,target=relative"}, "absolute path"},
	} {
		_, err := n.CLI(append(append([]string{"run", "--rm"}, tc.args...), img.Ref, "true")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %v: %v; want %q", tc.args, err, tc.want)
		}
	}
	if got := n.MustCLI("volume", "ls", "-q"); strings.Contains(got, "bad") {
		t.Errorf("a refused run made a volume: %q", got)
	}

	// The local driver's options, as docker's: a bind of a host directory
	// (type=none,o=bind) and a tmpfs volume.
	n.MustCLI("volume", "create", "--opt", "type=none", "--opt", "device="+host, "--opt", "o=bind", "bound")
	out = n.MustCLI("run", "--rm", "-v", "bound:/b", "--mount", "type=volume,source=fast,target=/f,volume-opt=type=tmpfs,volume-opt=device=tmpfs",
		"--entrypoint", "/bin/sh", img.Ref, "-c", "cat /b/in; grep ' /f ' /proc/mounts")
	if !strings.Contains(out, "host file") || !strings.Contains(out, "tmpfs /f tmpfs") {
		t.Errorf("volume-opt volumes: the container shows\n%s", out)
	}
}
