package benchkit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
)

// CgroupRoot is where the cgroup hierarchies are mounted.
const CgroupRoot = "/sys/fs/cgroup"

// RuntimeNode is an unclustered daemon that runs containers under a
// cgroup parent of its own. Close (also registered as a cleanup) removes
// its containers, stops it and removes the cgroup parent in every
// hierarchy.
type RuntimeNode struct {
	*harness.Node
	CgroupParent string

	closeOnce sync.Once
}

// StartRuntimeNode starts a daemon with --cgroup-parent set to a name
// unique to this program and node. Containers need root.
func StartRuntimeNode(tb *TB, name string, args ...string) *RuntimeNode {
	if os.Geteuid() != 0 {
		tb.Fatalf("containers need root")
	}
	parent := fmt.Sprintf("shoal-bench-%d-%s-%d", os.Getpid(), name, time.Now().UnixNano()%1e6)
	n := &RuntimeNode{Node: harness.NewNode(tb, name, append(args, "--cgroup-parent", parent)...), CgroupParent: parent}
	tb.Cleanup(n.Close)
	n.Start()
	return n
}

// DataDir is the daemon's --data-dir.
func (n *RuntimeNode) DataDir() string { return filepath.Join(n.Dir, "data") }

// ShimInstalled is the embedded shoal-shim the daemon installed, or ""
// when the binary carries none (it then runs itself as the shim).
func (n *RuntimeNode) ShimInstalled() string {
	m, _ := filepath.Glob(filepath.Join(n.DataDir(), "runtime", "bin", "shoal-shim-*"))
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

// Runtime dials the daemon's socket. The caller closes the connection.
func (n *RuntimeNode) Runtime() (shoalv1.RuntimeServiceClient, *grpc.ClientConn, error) {
	c, err := grpc.NewClient("unix://"+n.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return shoalv1.NewRuntimeServiceClient(c), c, nil
}

// Close removes every container through the daemon, stops it (SIGTERM,
// then SIGKILL after 20 s), and removes whatever is left: processes
// under the node's directory or cgroup parent (which only this node's
// containers can hold), mounts under its directory, the cgroup parent.
// It runs once.
func (n *RuntimeNode) Close() {
	n.closeOnce.Do(func() {
		if n.Running() {
			if out, err := n.CLI("ps", "-a", "-q"); err == nil {
				for _, id := range strings.Fields(out) {
					_, _ = n.CLI("rm", "-f", id)
				}
			}
			n.Stop()
		}
		killLeftovers(n.Dir, n.CgroupParent)
		unmountUnder(n.Dir)
		RemoveCgroupParent(n.CgroupParent)
	})
}

// killLeftovers SIGKILLs the shims (their command line names a container
// directory under dir) and the processes in the cgroup parent's groups:
// both can only be this node's, and are there only when a removal failed.
func killLeftovers(dir, parent string) {
	pids := map[int]bool{}
	for _, p := range FindProcs(func(_ int, args []string) bool {
		return len(args) >= 3 && (args[1] == "__shim" || args[1] == "__init") && strings.HasPrefix(args[2], dir+"/")
	}) {
		pids[p] = true
	}
	for _, g := range cgroupDirs(parent) {
		data, _ := os.ReadFile(filepath.Join(g, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			if p, err := strconv.Atoi(f); err == nil && p > 1 {
				pids[p] = true
			}
		}
	}
	for p := range pids {
		fmt.Fprintf(os.Stderr, "bench: killing leftover container process %d\n", p)
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	if len(pids) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
}

// unmountUnder detaches every mount point below dir, deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		_ = unix.Unmount(p, unix.MNT_DETACH)
	}
}

// cgroupDirs lists parent and the groups below it in every hierarchy
// under CgroupRoot (and the root itself, for cgroup v2), deepest first.
func cgroupDirs(parent string) []string {
	if parent == "" || strings.Contains(parent, "..") {
		return nil
	}
	roots := []string{CgroupRoot}
	subs, _ := os.ReadDir(CgroupRoot)
	for _, s := range subs {
		roots = append(roots, filepath.Join(CgroupRoot, s.Name()))
	}
	var dirs []string
	for _, r := range roots {
		top := filepath.Join(r, parent)
		if st, err := os.Lstat(top); err != nil || !st.IsDir() {
			continue
		}
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.SliceStable(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// RemoveCgroupParent removes parent and any group below it in every
// hierarchy (rmdir only: groups still holding processes stay, and are
// reported).
func RemoveCgroupParent(parent string) {
	for _, d := range cgroupDirs(parent) {
		// A group whose last process just exited can be busy a moment.
		err := os.Remove(d)
		for i := 0; i < 10 && errors.Is(err, unix.EBUSY); i++ {
			time.Sleep(50 * time.Millisecond)
			err = os.Remove(d)
		}
		if err != nil && !os.IsNotExist(err) {
			fmt.Fprintf(os.Stderr, "bench: remove cgroup %s: %v\n", d, err)
		}
	}
}

// FindProcs returns the PIDs whose command line (split at NULs) match
// says yes to.
func FindProcs(match func(pid int, args []string) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		if match(pid, strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")) {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// PPID is the parent of pid, from /proc/PID/stat.
func PPID(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(rest) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(rest[1])
	return p
}
