package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/filescan"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
)

// Secret values in these tests are random, never printed: a failure
// names the file that holds one, not the value.

func randomSecret(t *testing.T, prefix string) []byte {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return []byte(prefix + hex.EncodeToString(b))
}

func ctl(t *testing.T, e *faults.Env) (shoalv1.ControlServiceClient, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return e.C.Leader(20 * time.Second).Control(), ctx
}

func createSecret(t *testing.T, e *faults.Env, name string, data []byte) string {
	t.Helper()
	c, ctx := ctl(t, e)
	resp, err := c.CreateSecret(ctx, &shoalv1.CreateSecretRequest{Spec: &shoalv1.SecretSpec{Name: name, Data: data}})
	if err != nil {
		t.Fatalf("create secret %s: %v", name, err)
	}
	return resp.GetSecret().GetId()
}

func createConfig(t *testing.T, e *faults.Env, name string, data []byte) string {
	t.Helper()
	c, ctx := ctl(t, e)
	resp, err := c.CreateConfig(ctx, &shoalv1.CreateConfigRequest{Spec: &shoalv1.ConfigSpec{Name: name, Data: data}})
	if err != nil {
		t.Fatalf("create config %s: %v", name, err)
	}
	return resp.GetConfig().GetId()
}

// containerFile is what a container sees of one file: read through
// /proc/PID/root, and the file system of its mount point from
// /proc/PID/mountinfo.
type containerFile struct {
	data       []byte
	uid, gid   uint32
	mode       os.FileMode
	fstype     string
	mountFlags string
}

func readContainerFile(pid int, target string) (containerFile, error) {
	p := fmt.Sprintf("/proc/%d/root%s", pid, target)
	data, err := os.ReadFile(p)
	if err != nil {
		return containerFile{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return containerFile{}, err
	}
	sys := st.Sys().(*syscall.Stat_t)
	f := containerFile{data: data, uid: sys.Uid, gid: sys.Gid, mode: st.Mode().Perm()}
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return containerFile{}, err
	}
	for _, l := range strings.Split(string(mi), "\n") {
		fields := strings.Fields(l)
		if len(fields) < 10 || fields[4] != target {
			continue
		}
		for i, x := range fields {
			if x == "-" && i+1 < len(fields) {
				f.fstype, f.mountFlags = fields[i+1], fields[5] // the last mount on the target wins
			}
		}
	}
	return f, nil
}

// checkContainerFile checks one secret or config file in a container.
func checkContainerFile(pid int, target string, want []byte, uid, gid uint32, mode os.FileMode) error {
	f, err := readContainerFile(pid, target)
	if err != nil {
		return fmt.Errorf("container pid %d: %v", pid, err)
	}
	switch {
	case !bytes.Equal(f.data, want):
		return fmt.Errorf("container pid %d: %s holds %d bytes, not the %d of the value given", pid, target, len(f.data), len(want))
	case f.uid != uid || f.gid != gid:
		return fmt.Errorf("container pid %d: %s is owned by %d:%d; want %d:%d", pid, target, f.uid, f.gid, uid, gid)
	case f.mode != mode:
		return fmt.Errorf("container pid %d: %s has mode %#o; want %#o", pid, target, f.mode, mode)
	case f.fstype != "tmpfs":
		return fmt.Errorf("container pid %d: %s is on %q in its mountinfo; want tmpfs", pid, target, f.fstype)
	case !strings.HasPrefix(f.mountFlags, "ro"):
		return fmt.Errorf("container pid %d: %s is mounted %s; want read-only", pid, target, f.mountFlags)
	}
	return nil
}

// secretMounts are the tmpfs mounted under the node's exec root (ours),
// from the host's mountinfo (the daemons share its mount namespace).
func secretMounts(t *testing.T, n *harness.Node) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], n.ExecRoot+"/") {
			out = append(out, fields[4])
		}
	}
	return out
}

// filesWith lists the regular files under dir whose bytes contain
// needle (filescan: without following symlinks). A scan that fails, or
// that read no file where some must be (populated: a data dir), fails
// the test: finding nothing must mean the value is not there, not that
// nothing was looked at.
func filesWith(t *testing.T, dir string, needle []byte, populated bool) []string {
	t.Helper()
	hits, read, err := filescan.Scan([][]byte{needle}, dir)
	if err != nil {
		t.Fatalf("scan %s: %v", dir, err)
	}
	if populated && read == 0 {
		t.Fatalf("scan %s read no file", dir)
	}
	var out []string
	for _, h := range hits {
		out = append(out, h.Path)
	}
	return out
}

// leaks says where on node n a value is found: its data dir, its log,
// and (unless allowTmpfs) its tasks' tmpfs.
func leaks(t *testing.T, n *harness.Node, value []byte, allowTmpfs bool) []string {
	t.Helper()
	out := filesWith(t, filepath.Join(n.Dir, "data"), value, true)
	if bytes.Contains([]byte(n.DaemonLog()), value) {
		out = append(out, filepath.Join(n.Dir, "daemon.log"))
	}
	if !allowTmpfs {
		out = append(out, filesWith(t, n.ExecRoot, value, false)...)
	}
	return out
}

func onlyContainer(n *harness.Node, svc string) (harness.Container, error) {
	cs := harness.Of(svc, n.RunningContainers())
	if len(cs) != 1 {
		return harness.Container{}, fmt.Errorf("%s runs %d containers of %s; want 1", n.Name, len(cs), svc)
	}
	return cs[0], nil
}

// A service with a secret and a config on 2 of 3 workers: in each of its
// containers the files have their content, owner and mode, read-only on
// tmpfs; the third worker has no copy anywhere (data dir, tmpfs, log),
// nor do the two others' data dirs and logs, nor the manager's data dir
// (its Raft log and snapshots are encrypted) and log.
// Rotation by a service update puts the new value in every task, the old
// secret can then be removed and is gone from every node. Scaled to 0,
// the nodes keep no tmpfs of ours.
func TestSecretsDeliveredOnlyWhereNeeded(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 3)
	m, w1, w2, w3 := e.C.Managers[0], e.C.Workers[0], e.C.Workers[1], e.C.Workers[2]
	old, conf := randomSecret(t, "db-v1-"), append([]byte("listen = 80\n# "), randomSecret(t, "conf-")...)
	createSecret(t, e, "db_v1", old)
	createConfig(t, e, "app.conf", conf)

	spec := e.Spec("app", 2)
	spec.Task.Placement = &shoalv1.Placement{Constraints: []string{"node.role==worker", "node.id!=" + w3.ID()}, MaxReplicas: 1}
	spec.Task.Container.Secrets = []*shoalv1.SecretReference{{SecretName: "db_v1",
		File: &shoalv1.FileTarget{Name: "db_password", Uid: "1000", Gid: "1000", Mode: 0o400}}}
	spec.Task.Container.Configs = []*shoalv1.ConfigReference{{ConfigName: "app.conf"}}
	e.Create(spec)

	for _, n := range []*harness.Node{w1, w2} {
		c, err := onlyContainer(n, "app")
		if err != nil {
			t.Fatal(err)
		}
		if err := checkContainerFile(c.Pid, "/run/secrets/db_password", old, 1000, 1000, 0o400); err != nil {
			t.Errorf("%s: %v", n.Name, err)
		}
		if err := checkContainerFile(c.Pid, "/app.conf", conf, 0, 0, 0o444); err != nil {
			t.Errorf("%s: %v", n.Name, err)
		}
		if ms := secretMounts(t, n); len(ms) != 1 || ms[0] != filepath.Join(n.ExecRoot, "secrets", c.Task) {
			t.Errorf("%s has tmpfs of ours at %v; want one, for task %s", n.Name, ms, c.Task)
		}
		if l := leaks(t, n, old, true); len(l) > 0 {
			t.Errorf("%s: the secret's value is in %v", n.Name, l)
		}
	}
	if cs := harness.Of("app", w3.RunningContainers()); len(cs) != 0 {
		t.Fatalf("%s runs %d containers of app; want none", w3.Name, len(cs))
	}
	if ms := secretMounts(t, w3); len(ms) != 0 {
		t.Errorf("%s, which runs no task of app, has tmpfs of ours at %v", w3.Name, ms)
	}
	for _, v := range [][]byte{old, conf} {
		if l := leaks(t, w3, v, false); len(l) > 0 {
			t.Errorf("%s, which runs no task of app, holds a value in %v", w3.Name, l)
		}
	}
	// The manager keeps it in its Raft log and snapshots, encrypted at
	// rest: not one plain byte of it in its data dir or its log.
	if l := leaks(t, m, old, false); len(l) > 0 {
		t.Errorf("the manager holds the secret's value in %v", l)
	}
	if t.Failed() {
		return
	}

	// Rotation.
	before := map[string]bool{}
	tasks, err := e.Tasks("app")
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		before[tk.GetId()] = true
	}
	next := randomSecret(t, "db-v2-")
	createSecret(t, e, "db_v2", next)
	m.MustCLI("service", "update", "-d", "--secret-rm", "db_v1", "--secret-add", "source=db_v2,target=db_password,uid=1000,gid=1000,mode=0400", "app")
	e.Eventually(90*time.Second, func() error {
		if err := e.Converged("app", 2); err != nil {
			return err
		}
		for _, n := range []*harness.Node{w1, w2} {
			c, err := onlyContainer(n, "app")
			if err != nil {
				return err
			}
			if before[c.Task] {
				return fmt.Errorf("%s still runs task %s from before the update", n.Name, c.Task)
			}
			if err := checkContainerFile(c.Pid, "/run/secrets/db_password", next, 1000, 1000, 0o400); err != nil {
				return fmt.Errorf("%s: %v", n.Name, err)
			}
		}
		return nil
	})
	// Until the update completes (its monitor period), it may still roll
	// back to db_v1, whose removal is refused meanwhile.
	e.Eventually(30*time.Second, func() error {
		c, ctx := ctl(t, e)
		resp, err := c.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: "app"})
		if err != nil {
			return err
		}
		if st := resp.GetService().GetUpdateStatus().GetState(); st != shoalv1.UpdateState_UPDATE_STATE_COMPLETED {
			return fmt.Errorf("app's update is %v", st)
		}
		return nil
	})
	if out, err := m.CLI("secret", "rm", "db_v1"); err != nil || out != "db_v1\n" {
		t.Fatalf("secret rm db_v1 after the rotation: %q, %v", out, err)
	}
	e.Eventually(30*time.Second, func() error {
		for _, n := range e.C.Nodes() {
			for _, mp := range secretMounts(t, n) {
				if before[filepath.Base(mp)] {
					return fmt.Errorf("%s: the tmpfs of task %s from before the update is still mounted", n.Name, filepath.Base(mp))
				}
			}
			if l := filesWith(t, n.ExecRoot, old, false); len(l) > 0 {
				return fmt.Errorf("%s: the old value is still in %v", n.Name, l)
			}
			if l := leaks(t, n, old, false); len(l) > 0 {
				return fmt.Errorf("%s: the old value is in %v", n.Name, l)
			}
		}
		return nil
	})

	// Every task ends: no tmpfs of ours is left on any node.
	m.MustCLI("service", "scale", "-d", "app=0")
	e.Eventually(60*time.Second, func() error {
		for _, n := range e.C.Nodes() {
			if ms := secretMounts(t, n); len(ms) > 0 {
				return fmt.Errorf("%s: tmpfs of ours still mounted at %v after scaling to 0", n.Name, ms)
			}
			if ents, _ := os.ReadDir(filepath.Join(n.ExecRoot, "secrets")); len(ents) > 0 {
				return fmt.Errorf("%s: %d task directories left under %s/secrets", n.Name, len(ents), n.ExecRoot)
			}
		}
		return nil
	})
	for _, n := range e.C.Nodes() {
		if bytes.Contains([]byte(n.DaemonLog()), next) || bytes.Contains([]byte(n.DaemonLog()), old) {
			t.Errorf("%s's log holds a secret's value", n.Name)
		}
	}
}

// A worker restarted while the managers are stopped keeps its task's
// files: the container it took over still has them, and so does the new
// container it starts in place when the workload dies, from the task's
// tmpfs (the restarted daemon holds no secret in memory). With the tmpfs
// gone too, the next restart waits for a manager, and starts once one
// answers with the secret.
func TestSecretsSurviveDaemonRestartWithoutManagers(t *testing.T) {
	needRoot(t)
	// Default heartbeats: the worker must be back in touch within the
	// restarted leader's three periods (its reconnect back-off is bounded),
	// so the task that waited is the one that runs.
	e := faults.Start(t, 1, 1)
	m, w := e.C.Managers[0], e.C.Workers[0]
	value, conf := randomSecret(t, "pw-"), []byte("mode = restart\n")
	createSecret(t, e, "pw", value)
	createConfig(t, e, "app.conf", conf)
	spec := e.Spec("app", 1)
	spec.Task.Placement = &shoalv1.Placement{Constraints: []string{"node.role==worker"}}
	spec.Task.Container.Secrets = []*shoalv1.SecretReference{{SecretName: "pw", File: &shoalv1.FileTarget{Mode: 0o440, Gid: "1000"}}}
	spec.Task.Container.Configs = []*shoalv1.ConfigReference{{ConfigName: "app.conf", File: &shoalv1.FileTarget{Name: "/etc/app.conf"}}}
	e.Create(spec)
	c, err := onlyContainer(w, "app")
	if err != nil {
		t.Fatal(err)
	}
	check := func(pid int) error {
		if err := checkContainerFile(pid, "/run/secrets/pw", value, 0, 1000, 0o440); err != nil {
			return err
		}
		return checkContainerFile(pid, "/etc/app.conf", conf, 0, 0, 0o444)
	}
	if err := check(c.Pid); err != nil {
		t.Fatal(err)
	}

	m.Stop()
	w.Stop()
	started := w.LogCount(`"daemon started"`)
	w.Start()
	// Up (its containers taken over), not just listening on its socket.
	e.Eventually(30*time.Second, func() error {
		if w.LogCount(`"daemon started"`) == started {
			return fmt.Errorf("%s has not finished starting", w.Name)
		}
		return nil
	})
	after, err := onlyContainer(w, "app")
	if err != nil || after.Pid != c.Pid {
		t.Fatalf("after the daemon restart: %v, %v; want the same container (pid %d) running", after, err, c.Pid)
	}
	if err := check(after.Pid); err != nil {
		t.Fatalf("the re-adopted container: %v", err)
	}
	if err := syscall.Kill(c.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.Eventually(30*time.Second, func() error {
		n, err := onlyContainer(w, "app")
		if err != nil {
			return err
		}
		if n.Pid == c.Pid || n.Task != c.Task {
			return fmt.Errorf("task %s's container is pid %d; want a new one of task %s", n.Task, n.Pid, c.Task)
		}
		return check(n.Pid)
	})
	if m.Running() {
		t.Fatal("the manager runs: the restart in place was not without managers")
	}

	// The tmpfs lost too (unmounted behind the daemon's back), the next
	// restart in place has the secret nowhere: the task waits, with no
	// container, until a manager answers and sends it.
	dir := filepath.Join(w.ExecRoot, "secrets", c.Task)
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	cur, err := onlyContainer(w, "app")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(cur.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.Eventually(10*time.Second, func() error {
		if cs := harness.Of("app", w.RunningContainers()); len(cs) > 0 && cs[0].Pid == cur.Pid {
			return fmt.Errorf("the killed workload (pid %d) is still there", cur.Pid)
		}
		return nil
	})
	harness.Holds(t, 3*time.Second, func() error {
		if cs := harness.Of("app", w.RunningContainers()); len(cs) != 0 {
			return fmt.Errorf("a container of app (pid %d) started with its secret nowhere on the node", cs[0].Pid)
		}
		return nil
	})
	m.Start()
	e.Eventually(60*time.Second, func() error {
		n, err := onlyContainer(w, "app")
		if err != nil {
			return err
		}
		if n.Task != c.Task {
			tasks, _ := e.Tasks("app")
			var states []string
			for _, tk := range tasks {
				states = append(states, fmt.Sprintf("%s desired %s is %s (%s; %s; restarts %d)", tk.GetId(), tk.GetDesiredState(), tk.GetStatus().GetState(),
					tk.GetStatus().GetMessage(), tk.GetStatus().GetErr(), tk.GetStatus().GetRestarts()))
			}
			return fmt.Errorf("task %s runs; want %s, restarted in place; tasks: %s", n.Task, c.Task, strings.Join(states, "; "))
		}
		return check(n.Pid)
	})
	for _, n := range []*harness.Node{m, w} {
		if bytes.Contains([]byte(n.DaemonLog()), value) {
			t.Errorf("%s's log holds the secret's value", n.Name)
		}
	}
	if l := leaks(t, w, value, true); len(l) > 0 {
		t.Errorf("the secret's value is in %v", l)
	}
}

// Three managers, snapshots every few entries: a secret's value — raw, in
// base64 (protojson's form of bytes) or in hex — is in no file of any
// manager's test directory (data dir with its Raft log and snapshots,
// certificates, exec root, daemon log), though every manager's snapshots
// hold the store that holds it and every manager serves it to its
// tasks' nodes from memory.
func TestSecretsNotInAnyManagersRaftData(t *testing.T) {
	needRoot(t)
	c := harness.StartCluster(t, 3, 0, "--raft-snapshot-threshold", "8", "--raft-snapshot-interval", "200ms", "--raft-trailing-logs", "4")
	value := randomSecret(t, "raft-")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctlc := c.Leader(20 * time.Second).Control()
	if _, err := ctlc.CreateSecret(ctx, &shoalv1.CreateSecretRequest{Spec: &shoalv1.SecretSpec{Name: "db", Data: value}}); err != nil {
		t.Fatalf("create secret: %v", err)
	}
	// Enough later entries for every manager to snapshot (and compact)
	// past the one that created the secret.
	for i := 0; i < 30; i++ {
		if _, err := ctlc.CreateConfig(ctx, &shoalv1.CreateConfigRequest{Spec: &shoalv1.ConfigSpec{Name: fmt.Sprintf("c%d", i), Data: []byte("x")}}); err != nil {
			t.Fatalf("create config %d: %v", i, err)
		}
	}
	harness.Eventually(t, 30*time.Second, func() error {
		for _, m := range c.Managers {
			// raft's file store keeps them in a snapshots/ of its own.
			snaps, _ := filepath.Glob(filepath.Join(m.Dir, "data", "raft", "snapshots", "snapshots", "*", "state.bin"))
			if len(snaps) == 0 {
				return fmt.Errorf("%s has no snapshot yet", m.Name)
			}
		}
		return nil
	})
	// Every manager holds the secret (it answers for it by name), so the
	// search below looks where it would be if it were written in clear.
	for _, m := range c.Managers {
		resp, err := m.Control().GetSecret(ctx, &shoalv1.GetSecretRequest{SecretId: "db"})
		if err != nil || resp.GetSecret().GetSpec().GetName() != "db" {
			t.Fatalf("%s: get secret db: %v", m.Name, err)
		}
		if len(resp.GetSecret().GetSpec().GetData()) != 0 {
			t.Fatalf("%s: GetSecret returned the secret's data", m.Name)
		}
	}
	needles := map[string][]byte{
		"raw":       value,
		"base64":    []byte(base64.StdEncoding.EncodeToString(value)),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(value)),
		"hex":       []byte(hex.EncodeToString(value)),
	}
	for _, m := range c.Managers {
		for form, needle := range needles {
			if l := filesWith(t, m.Dir, needle, true); len(l) > 0 {
				t.Errorf("%s: the secret's value (%s) is in %v", m.Name, form, l)
			}
		}
	}
}

// Past gRPC's 4 MiB default message size: a task with twelve secrets of
// 450 KiB gets them all (the node's full assignment set is over 5 MiB),
// and `config ls` lists six configs of 900 KiB.
func TestLargeSecretsAndConfigs(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 1)
	m, w := e.C.Managers[0], e.C.Workers[0]
	spec := e.Spec("big", 1)
	spec.Task.Placement = &shoalv1.Placement{Constraints: []string{"node.role==worker"}}
	values := map[string][]byte{}
	for i := 0; i < 12; i++ {
		name := fmt.Sprintf("big%d", i)
		v := append(randomSecret(t, name+"-"), bytes.Repeat([]byte{'x'}, 450<<10)...)
		values[name] = v
		createSecret(t, e, name, v)
		spec.Task.Container.Secrets = append(spec.Task.Container.Secrets, &shoalv1.SecretReference{SecretName: name})
	}
	for i := 0; i < 6; i++ {
		createConfig(t, e, fmt.Sprintf("conf%d", i), bytes.Repeat([]byte{'c'}, 900<<10))
	}
	e.Create(spec)
	e.Eventually(60*time.Second, func() error {
		c, err := onlyContainer(w, "big")
		if err != nil {
			return err
		}
		for name, v := range values {
			if err := checkContainerFile(c.Pid, "/run/secrets/"+name, v, 0, 0, 0o444); err != nil {
				return err
			}
		}
		return nil
	})
	out, err := m.CLI("config", "ls", "--format", "{{.Name}}")
	if err != nil {
		t.Fatalf("config ls: %v", err)
	}
	if n := len(strings.Fields(out)); n != 6 {
		t.Fatalf("config ls lists %d configs; want 6", n)
	}
}
