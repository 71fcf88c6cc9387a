package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// attachProbe is what moving one process into a cgroup costs here, the
// step both shoal and runc take for every container: a PID written to
// cgroup.procs in each hierarchy (one with cgroup v2).
type attachProbe struct {
	Hierarchies int             `json:"hierarchies"`
	Pause       time.Duration   `json:"pause_ns"` // between moves, as between container starts
	First       []time.Duration `json:"first_write_ns"`
	All         []time.Duration `json:"all_writes_ns"`
}

// probeAttach moves a `sleep` process it starts back and forth between
// two groups under parent, n times, pause apart, and times the writes.
// The first write of a move takes the kernel's cgroup_threadgroup_rwsem
// for writing; after an idle moment that waits for an RCU grace period.
// The sleep is killed when probeAttach returns, or by onExit's cleanup if
// the program is stopped first.
func probeAttach(parent string, n int, pause time.Duration, onExit func(func())) (attachProbe, error) {
	roots, err := cgroupMounts()
	if err != nil {
		return attachProbe{}, err
	}
	p := attachProbe{Hierarchies: len(roots), Pause: pause}
	for _, r := range roots {
		for _, d := range []string{filepath.Join(r, parent), filepath.Join(r, parent, "a"), filepath.Join(r, parent, "b")} {
			if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
				return p, err
			}
			// A new cpuset group has no CPUs or memory nodes until given some.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if v, err := os.ReadFile(filepath.Join(r, f)); err == nil {
					_ = os.WriteFile(filepath.Join(d, f), v, 0o644)
				}
			}
		}
	}
	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		return p, err
	}
	onExit(func() { _ = sleep.Process.Kill() }) // after Wait: ErrProcessDone, nothing sent
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	pid := []byte(strconv.Itoa(sleep.Process.Pid))
	for i := 0; i < n; i++ {
		time.Sleep(pause)
		sub := []string{"a", "b"}[i%2]
		var total time.Duration
		for j, r := range roots {
			start := time.Now()
			if err := os.WriteFile(filepath.Join(r, parent, sub, "cgroup.procs"), pid, 0o644); err != nil {
				return p, fmt.Errorf("attach to %s: %w", filepath.Join(r, parent, sub), err)
			}
			d := time.Since(start)
			total += d
			if j == 0 {
				p.First = append(p.First, d)
			}
		}
		p.All = append(p.All, total)
	}
	return p, nil
}

// cgroupMounts lists the mount points of the cgroup v1 hierarchies, or
// the cgroup v2 one when there is no v1 hierarchy.
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var v1, v2 []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mount-point ... - fstype source options
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		switch fields[sep+1] {
		case "cgroup":
			v1 = append(v1, fields[4])
		case "cgroup2":
			v2 = append(v2, fields[4])
		}
	}
	if len(v1) > 0 {
		return v1, sc.Err()
	}
	if len(v2) == 0 {
		return nil, fmt.Errorf("no cgroup hierarchy is mounted")
	}
	return v2[:1], sc.Err()
}
