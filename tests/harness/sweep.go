package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Every node a test process starts carries that process's PID: in its
// cgroup parent ("shoal-test-<pid>-...") and in its data directory (the
// file ownerFile). A test process killed before its cleanups ran (a
// timeout, SIGKILL) leaves daemons, containers, cgroups and mounts behind;
// SweepStale removes those whose owner no longer runs, and nothing else.

const (
	cgroupPrefix = "shoal-test-"
	ownerFile    = "harness-owner"
)

var sweepOnce sync.Once

// sweepStaleOnce runs SweepStale the first time a test process starts a
// node or a network.
func sweepStaleOnce() { sweepOnce.Do(SweepStale) }

// SweepStale kills the daemons and containers of test processes that are
// gone and removes their cgroups, rootfs mounts and namespaces.
func SweepStale() {
	SweepNetns()
	// Daemons started on loopback: their command line names the cgroup
	// parent, and with it the owner.
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		args := strings.Split(readFile(fmt.Sprintf("/proc/%d/cmdline", pid)), "\x00")
		for i, a := range args {
			if a == "--cgroup-parent" && i+1 < len(args) && staleOwner(args[i+1]) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// Containers: every process in a stale group is the dead test's.
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	var stale []string
	for _, root := range roots {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.IsDir() && staleOwner(e.Name()) {
				stale = append(stale, filepath.Join(root, e.Name()))
			}
		}
	}
	for _, parent := range stale {
		kids, _ := os.ReadDir(parent)
		for _, k := range kids {
			if k.IsDir() {
				for _, f := range strings.Fields(readFile(filepath.Join(parent, k.Name(), "cgroup.procs"))) {
					if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
		}
	}
	unmountStale()
	deadline := time.Now().Add(5 * time.Second)
	for _, parent := range stale {
		kids, _ := os.ReadDir(parent)
		for _, k := range kids {
			if k.IsDir() {
				for os.Remove(filepath.Join(parent, k.Name())) != nil && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
		_ = os.Remove(parent)
	}
	removeStaleDirs()
}

// removeStaleDirs deletes node directories (t.TempDir()s holding an owner
// file) of test processes that no longer run, once nothing is mounted
// under them.
func removeStaleDirs() {
	tmp := os.TempDir()
	a, _ := filepath.Glob(filepath.Join(tmp, "*", ownerFile))
	b, _ := filepath.Glob(filepath.Join(tmp, "*", "*", ownerFile))
	mounts := readFile("/proc/self/mountinfo")
	for _, f := range append(a, b...) {
		pid, err := strconv.Atoi(strings.TrimSpace(readFile(f)))
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		dir := filepath.Dir(f)
		if strings.Contains(mounts, " "+dir+"/") {
			continue
		}
		_ = os.RemoveAll(dir)
		if parent := filepath.Dir(dir); parent != tmp {
			_ = os.Remove(parent) // the test's TempDir root, once empty
		}
	}
}

// staleOwner reports whether a cgroup parent name belongs to a test
// process that no longer runs.
func staleOwner(name string) bool {
	rest, ok := strings.CutPrefix(name, cgroupPrefix)
	if !ok {
		return false
	}
	pidPart, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidPart)
	return err == nil && pid != os.Getpid() && !alive(pid)
}

func alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// unmountStale detaches container root filesystems and the tmpfs of
// tasks' secrets and configs in node directories
// whose owner file names a process that no longer runs.
func unmountStale() {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var targets []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := fields[4]
		i := strings.Index(mp, "/data/runtime/containers/")
		if i < 0 || !strings.HasSuffix(mp, "/rootfs") {
			// or a task's tmpfs of secrets and configs
			if i = strings.Index(mp, "/exec/secrets/"); i < 0 {
				continue
			}
		}
		pid, err := strconv.Atoi(strings.TrimSpace(readFile(filepath.Join(mp[:i], ownerFile))))
		if err == nil && pid != os.Getpid() && !alive(pid) {
			targets = append(targets, mp)
		}
	}
	for _, mp := range targets {
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	}
}
