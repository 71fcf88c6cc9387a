package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-run/shoal/runtime/cgroup"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// A test process killed before its cleanups leaves a daemon, a running
// container (its cgroups and rootfs mount) and a network namespace; the
// next test process's sweep removes all of them, and nothing of a test
// process that still runs.
func TestSweepRemovesWhatAKilledTestLeft(t *testing.T) {
	needRoot(t)
	if os.Getenv("SHOAL_SWEEP_VICTIM") == "1" {
		sweepVictim(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSweepRemovesWhatAKilledTestLeft$", "-test.v")
	cmd.Env = append(os.Environ(), "SHOAL_SWEEP_VICTIM=1", "SHOAL_BIN="+harness.Binary(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var daemonPid, ctrPid, devPid, devCtrPid int
	var cgParent, rootfs, netns, devParent, devDir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if _, err := fmt.Sscanf(line, "DEV %d %d %s %s", &devPid, &devCtrPid, &devParent, &devDir); err == nil {
			continue
		}
		if _, err := fmt.Sscanf(line, "LEFT %d %d %s %s %s", &daemonPid, &ctrPid, &cgParent, &rootfs, &netns); err == nil {
			break
		}
		t.Logf("victim: %s", sc.Text())
	}
	if daemonPid == 0 || devPid == 0 {
		t.Fatal("the victim test did not start its node and its shoal dev")
	}
	// The victim dies without cleaning up; what it started runs on.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	go func() { _, _ = bufio.NewReader(out).WriteTo(os.Stderr) }()
	for _, pid := range []int{daemonPid, ctrPid, devPid, devCtrPid} {
		if syscall.Kill(pid, 0) != nil {
			t.Fatalf("pid %d died with the test process; the sweep would prove nothing", pid)
		}
	}
	if len(cgroup.ParentDirs(cgParent)) == 0 || !mounted(rootfs) {
		t.Fatalf("no cgroup %s or mount %s left to sweep", cgParent, rootfs)
	}

	harness.SweepStale()

	harness.Eventually(t, 10*time.Second, func() error {
		for _, pid := range []int{daemonPid, ctrPid, devPid, devCtrPid} {
			if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(data), ") Z") {
				return fmt.Errorf("pid %d still runs", pid)
			}
		}
		return nil
	})
	for _, p := range []string{cgParent, devParent} {
		if dirs := cgroup.ParentDirs(p); len(dirs) != 0 {
			t.Errorf("cgroups left: %v", dirs)
		}
	}
	if _, err := os.Stat(devDir); err == nil {
		t.Errorf("the shoal dev directory is left: %s", devDir)
	}
	if mounted(rootfs) {
		t.Errorf("rootfs still mounted: %s", rootfs)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", netns)); err == nil {
		t.Errorf("namespace %s left", netns)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(rootfs)))))); err == nil {
		t.Errorf("the node's directory is left: %s", rootfs)
	}
}

// sweepVictim starts what a fault test starts, reports it and waits to be
// killed.
func sweepVictim(t *testing.T) {
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	net := harness.NewNet(t)
	h := net.AddHost("victim")
	n := harness.NewNode(t, "victim")
	n.Start()
	n.MustCLI("run", "-d", img.Ref, "sleep", "1h")
	var cs []harness.Container
	harness.Eventually(t, 30*time.Second, func() error {
		if cs = n.RunningContainers(); len(cs) != 1 {
			return fmt.Errorf("%d containers run", len(cs))
		}
		return nil
	})
	rootfs := filepath.Join(n.Dir, "data", "runtime", "containers", cs[0].ID, "rootfs")
	// shoal dev too (tests/worker_test.go runs one), with a container.
	dev := harness.StartDev(t)
	if _, err := dev.CLI("run", "-d", img.Ref, "sleep", "1h"); err != nil {
		t.Fatal(err)
	}
	var dcs []harness.Container
	harness.Eventually(t, 30*time.Second, func() error {
		if dcs = dev.Running(); len(dcs) != 1 {
			return fmt.Errorf("%d containers run in shoal dev", len(dcs))
		}
		return nil
	})
	fmt.Printf("DEV %d %d %s %s\n", dev.PID(), dcs[0].Pid, dev.CgroupParent, dev.Dir)
	fmt.Printf("LEFT %d %d %s %s %s\n", n.PID(), cs[0].Pid, n.CgroupParent, rootfs, h.NS)
	select {}
}

func mounted(path string) bool {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Contains(string(data), " "+path+" ")
}
