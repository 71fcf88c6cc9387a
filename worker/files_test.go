package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func secretRef(id, name string, f *shoalv1.FileTarget) *shoalv1.SecretReference {
	return &shoalv1.SecretReference{SecretId: id, SecretName: name, File: f}
}

func configRef(id, name string, f *shoalv1.FileTarget) *shoalv1.ConfigReference {
	return &shoalv1.ConfigReference{ConfigId: id, ConfigName: name, File: f}
}

func withFiles(t *shoalv1.Task, secrets []*shoalv1.SecretReference, configs []*shoalv1.ConfigReference) *shoalv1.Task {
	if t.Spec == nil {
		t.Spec = &shoalv1.TaskSpec{}
	}
	if t.Spec.Container == nil {
		t.Spec.Container = &shoalv1.ContainerSpec{Image: "img"}
	}
	t.Spec.Container.Secrets, t.Spec.Container.Configs = secrets, configs
	return t
}

func TestPlanFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secrets []*shoalv1.SecretReference
		configs []*shoalv1.ConfigReference
		want    []TaskFile
		wantErr string
	}{
		{name: "defaults",
			secrets: []*shoalv1.SecretReference{secretRef("s1", "db", nil)},
			configs: []*shoalv1.ConfigReference{configRef("c1", "app.conf", nil)},
			want: []TaskFile{
				{Kind: KindSecret, ID: "s1", Name: "db", Target: "/run/secrets/db", Mode: 0o444, HostName: "secret-0-s1"},
				{Kind: KindConfig, ID: "c1", Name: "app.conf", Target: "/app.conf", Mode: 0o444, HostName: "config-0-c1"},
			}},
		{name: "given target, owner and mode",
			secrets: []*shoalv1.SecretReference{
				secretRef("s1", "db-v2", &shoalv1.FileTarget{Name: "db_password", Uid: "1000", Gid: "1000", Mode: 0o400}),
				secretRef("s2", "tls", &shoalv1.FileTarget{Name: "/etc/ssl/key.pem"}),
				secretRef("s3", "x", &shoalv1.FileTarget{Name: "sub/dir/x"}),
			},
			configs: []*shoalv1.ConfigReference{configRef("c1", "nginx", &shoalv1.FileTarget{Name: "/etc/nginx/nginx.conf", Gid: "33", Mode: 0o440})},
			want: []TaskFile{
				{Kind: KindSecret, ID: "s1", Name: "db-v2", Target: "/run/secrets/db_password", UID: 1000, GID: 1000, Mode: 0o400, HostName: "secret-0-s1"},
				{Kind: KindSecret, ID: "s2", Name: "tls", Target: "/etc/ssl/key.pem", Mode: 0o444, HostName: "secret-1-s2"},
				{Kind: KindSecret, ID: "s3", Name: "x", Target: "/run/secrets/sub/dir/x", Mode: 0o444, HostName: "secret-2-s3"},
				{Kind: KindConfig, ID: "c1", Name: "nginx", Target: "/etc/nginx/nginx.conf", GID: 33, Mode: 0o440, HostName: "config-0-c1"},
			}},
		{name: "none"},
		{name: "escapes", secrets: []*shoalv1.SecretReference{secretRef("s1", "db", &shoalv1.FileTarget{Name: "../../etc/passwd"})},
			wantErr: `secret "db": target "../../etc/passwd" has a ".." element: it must stay under /run/secrets`},
		{name: "escapes, absolute", configs: []*shoalv1.ConfigReference{configRef("c1", "app", &shoalv1.FileTarget{Name: "/etc/../../x"})},
			wantErr: `config "app": target "/etc/../../x" has a ".." element`},
		{name: "uid not numeric", secrets: []*shoalv1.SecretReference{secretRef("s1", "db", &shoalv1.FileTarget{Uid: "postgres"})},
			wantErr: `secret "db": uid "postgres" is not numeric`},
		{name: "gid not numeric", configs: []*shoalv1.ConfigReference{configRef("c1", "app", &shoalv1.FileTarget{Gid: "-1"})},
			wantErr: `config "app": gid "-1" is not numeric`},
		{name: "no ID", secrets: []*shoalv1.SecretReference{secretRef("", "db", nil)},
			wantErr: `secret "db": the reference has no secret ID`},
		{name: "mode", secrets: []*shoalv1.SecretReference{secretRef("s1", "db", &shoalv1.FileTarget{Mode: 0o4755})},
			wantErr: `secret "db": mode 04755 has bits other than permissions`},
		{name: "same target twice", secrets: []*shoalv1.SecretReference{secretRef("s1", "a", &shoalv1.FileTarget{Name: "x"}), secretRef("s2", "b", &shoalv1.FileTarget{Name: "/run/secrets/x"})},
			wantErr: `secret "b": target /run/secrets/x is also secret "a"'s`},
		{name: "a directory", secrets: []*shoalv1.SecretReference{secretRef("s1", "db", &shoalv1.FileTarget{Name: "/run/secrets/"})},
			wantErr: `target "/run/secrets/" is a directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlanFiles(withFiles(&shoalv1.Task{Id: "t1"}, tc.secrets, tc.configs))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("PlanFiles = %v, %v; want an invalid-argument error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("PlanFiles = %v, %v;\nwant %v", got, err, tc.want)
			}
		})
	}
}

func TestFilesStore(t *testing.T) {
	f := NewFiles()
	sec := func(id, v string) *shoalv1.Secret {
		return &shoalv1.Secret{Id: id, Spec: &shoalv1.SecretSpec{Data: []byte(v)}}
	}
	changed := f.Changed()
	f.Update(true, []*shoalv1.Secret{sec("s1", "one"), sec("s2", "two")}, []*shoalv1.Config{{Id: "c1", Spec: &shoalv1.ConfigSpec{Data: []byte("c")}}}, nil, nil)
	select {
	case <-changed:
	default:
		t.Fatal("an update does not wake the waiters")
	}
	f.Update(false, []*shoalv1.Secret{sec("s3", "three")}, nil, []string{"s1"}, nil)
	if _, ok := f.Secret("s1"); ok {
		t.Fatal("a removed secret is still held")
	}
	if v, ok := f.Secret("s3"); !ok || string(v) != "three" {
		t.Fatal("an added secret is not held")
	}
	// A full set replaces everything.
	f.Update(true, []*shoalv1.Secret{sec("s4", "four")}, nil, nil, nil)
	s, c := f.Held()
	if !slices.Equal(s, []string{"s4"}) || len(c) != 0 {
		t.Fatalf("after a full set: secrets %v configs %v; want [s4] and none", s, c)
	}
}

// A task whose secret is not here yet waits in preparing, saying for
// which, and starts once the assignment stream delivers it; its files go
// when it ends by itself, and when it is shut down.
func TestTaskWaitsForItsSecret(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, stop := newAgent(t)
	defer stop()
	t1 := withFiles(task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_NONE),
		[]*shoalv1.SecretReference{secretRef("s1", "db", nil)}, []*shoalv1.ConfigReference{configRef("c1", "app", nil)})
	a.UpdateFiles(true, nil, []*shoalv1.Config{{Id: "c1", Spec: &shoalv1.ConfigSpec{Data: []byte("x")}}}, nil, nil)
	a.Update(true, []*shoalv1.Task{t1}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_PREPARING, 0)
	deadline := time.After(5 * time.Second)
	for r.last("t1").GetMessage() != "waiting for secret db from a manager" {
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("last status %v; want preparing, waiting for secret db from a manager", r.last("t1"))
		}
	}
	select {
	case id := <-f.started:
		t.Fatalf("container %s started without its secret", id)
	default:
	}
	a.UpdateFiles(false, []*shoalv1.Secret{{Id: "s1", Spec: &shoalv1.SecretSpec{Data: []byte("pw")}}}, nil, nil, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	f.exit(<-f.started, 0)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_COMPLETE, 0)
	waitReleased(t, f, "t1")

	t2 := withFiles(task("t2", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY),
		[]*shoalv1.SecretReference{secretRef("s1", "db", nil)}, nil)
	a.Update(false, []*shoalv1.Task{t2}, nil)
	r.waitFor(t, "t2", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	<-f.started
	if slices.Contains(f.releasedOnes(), "t2") {
		t.Fatal("a running task's files were released")
	}
	a.Update(false, nil, []string{"t2"})
	r.waitFor(t, "t2", shoalv1.TaskState_TASK_STATE_SHUTDOWN, 0)
	waitReleased(t, f, "t2")
}

// A restart in place finds the files of the earlier run though the
// node holds the secret no longer (a daemon restart with no manager
// answering): it does not wait.
func TestRestartInPlaceReusesFiles(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, clk, stop := newAgentClock(t)
	defer stop()
	t1 := withFiles(task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY),
		[]*shoalv1.SecretReference{secretRef("s1", "db", nil)}, nil)
	a.UpdateFiles(true, []*shoalv1.Secret{{Id: "s1", Spec: &shoalv1.SecretSpec{Data: []byte("pw")}}}, nil, nil, nil)
	a.Update(true, []*shoalv1.Task{t1}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	a.UpdateFiles(true, nil, nil, nil, nil) // forgotten in memory
	f.exit(<-f.started, 1)
	afterBackoff(t, clk, time.Millisecond)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 1)
	if len(f.releasedOnes()) != 0 {
		t.Fatalf("files released on a restart in place: %v", f.releasedOnes())
	}
}

// A task whose references are wrong is rejected with the reason, and
// nothing starts.
func TestTaskWithBadFileRejected(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, stop := newAgent(t)
	defer stop()
	t1 := withFiles(task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY),
		[]*shoalv1.SecretReference{secretRef("s1", "db", &shoalv1.FileTarget{Name: "../x"})}, nil)
	a.Update(true, []*shoalv1.Task{t1}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_REJECTED, 0)
	if got := r.last("t1").GetErr(); !strings.Contains(got, `secret "db": target "../x" has a ".." element`) {
		t.Fatalf("rejected with %q", got)
	}
	select {
	case id := <-f.started:
		t.Fatalf("container %s started", id)
	default:
	}
}

func waitReleased(t *testing.T, f *fakeExec, task string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for !slices.Contains(f.releasedOnes(), task) {
		select {
		case <-f.releasedCh:
		case <-deadline:
			t.Fatalf("task %s's files were never released (released: %v)", task, f.releasedOnes())
		}
	}
}

// The real tmpfs: mounted 0700, nosuid, nodev, noexec, with a size cap;
// each file with its content, owner and mode, bind-mounted read-only at
// its target; found again by a later start though memory forgot it;
// unmounted and removed on release; pruned at start when its task is
// gone.
func TestTaskTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	root := t.TempDir()
	files := NewFiles()
	e := &RuntimeExecutor{ExecRoot: root, Files: files}
	t.Cleanup(func() { e.PruneFiles(nil) })
	tk := withFiles(&shoalv1.Task{Id: "task1"},
		[]*shoalv1.SecretReference{secretRef("s1", "db", &shoalv1.FileTarget{Name: "db_password", Uid: "1000", Gid: "1001", Mode: 0o400})},
		[]*shoalv1.ConfigReference{configRef("c1", "app", nil)})
	if err := e.PrepareFiles(tk); err == nil || err.Error() != "waiting for secret db from a manager" {
		t.Fatalf("PrepareFiles without the secret = %v; want waiting for secret db from a manager", err)
	}
	dir := filepath.Join(root, "secrets", "task1")
	if isMountPoint(dir) {
		t.Fatal("a tmpfs was mounted for a task missing its secret")
	}
	files.Update(true, []*shoalv1.Secret{{Id: "s1", Spec: &shoalv1.SecretSpec{Data: []byte("s3cr3t-value")}}},
		[]*shoalv1.Config{{Id: "c1", Spec: &shoalv1.ConfigSpec{Data: []byte("conf=1\n")}}}, nil, nil)
	mounts, err := e.prepareFiles(tk)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]any{
		filepath.Join(dir, "secret-0-s1"), "/run/secrets/db_password", true,
		filepath.Join(dir, "config-0-c1"), "/app", true,
	})
	var got []any
	for _, m := range mounts {
		got = append(got, m.Source, m.Target, m.ReadOnly)
	}
	if fmt.Sprint(got) != want {
		t.Fatalf("mounts %v; want %v", got, want)
	}
	mi := mountLine(t, dir)
	if mi == "" || !strings.Contains(mi, " - tmpfs ") || !strings.Contains(mi, "nosuid") || !strings.Contains(mi, "nodev") ||
		!strings.Contains(mi, "noexec") || !strings.Contains(mi, "mode=700") || !strings.Contains(mi, "size=") {
		t.Fatalf("mountinfo of %s: %q; want tmpfs nosuid,nodev,noexec mode=700 size=...", dir, mi)
	}
	checkFile(t, filepath.Join(dir, "secret-0-s1"), "s3cr3t-value", 1000, 1001, 0o400)
	checkFile(t, filepath.Join(dir, "config-0-c1"), "conf=1\n", 0, 0, 0o444)

	// Forgotten in memory (a daemon restart): the files on the tmpfs do.
	files.Update(true, nil, nil, nil, nil)
	if err := e.PrepareFiles(tk); err != nil {
		t.Fatalf("PrepareFiles with the files on the tmpfs = %v", err)
	}
	checkFile(t, filepath.Join(dir, "secret-0-s1"), "s3cr3t-value", 1000, 1001, 0o400)

	e.ReleaseFiles("task1")
	if mountLine(t, dir) != "" {
		t.Fatal("the task's tmpfs is still mounted after release")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the task's directory is still there: %v", err)
	}
	// Gone from memory and from the tmpfs: the task waits again.
	if err := e.PrepareFiles(tk); err == nil {
		t.Fatal("PrepareFiles after release found files")
	}

	// At start, the tmpfs of tasks not kept go; the others stay.
	files.Update(true, []*shoalv1.Secret{{Id: "s1", Spec: &shoalv1.SecretSpec{Data: []byte("v")}}},
		[]*shoalv1.Config{{Id: "c1", Spec: &shoalv1.ConfigSpec{Data: []byte("c")}}}, nil, nil)
	tk2 := withFiles(&shoalv1.Task{Id: "task2"}, []*shoalv1.SecretReference{secretRef("s1", "db", nil)}, nil)
	for _, x := range []*shoalv1.Task{tk, tk2} {
		if err := e.PrepareFiles(x); err != nil {
			t.Fatal(err)
		}
	}
	if removed := e.PruneFiles(map[string]bool{"task2": true}); !slices.Equal(removed, []string{"task1"}) {
		t.Fatalf("PruneFiles removed %v; want [task1]", removed)
	}
	if mountLine(t, dir) != "" || mountLine(t, filepath.Join(root, "secrets", "task2")) == "" {
		t.Fatal("PruneFiles did not remove exactly task1's tmpfs")
	}
}

func mountLine(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return l
		}
	}
	return ""
}

func checkFile(t *testing.T, p, content string, uid, gid int, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != content {
		t.Fatalf("%s holds %d bytes, not the %d expected", p, len(data), len(content))
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != mode {
		t.Fatalf("%s has mode %#o; want %#o", p, st.Mode().Perm(), mode)
	}
	if u, g := fileIDsOf(st); u != uid || g != gid {
		t.Fatalf("%s is owned by %d:%d; want %d:%d", p, u, g, uid, gid)
	}
}

func fileIDsOf(st os.FileInfo) (uid, gid int) {
	s := st.Sys().(*syscall.Stat_t)
	return int(s.Uid), int(s.Gid)
}

// After a daemon restart with no manager answering, the agent takes the
// running task containers over from their records and restarts one in
// place when it exits; once a full assignment set came, the records say
// nothing.
func TestResumeRestartsInPlaceWithoutAManager(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, clk, stop := newAgentClock(t)
	defer stop()
	f.mu.Lock()
	f.exits["c9"] = make(chan Exit, 1)
	f.running["c9"] = "t1"
	f.onTmpfs["t1"] = true // its files, left on its tmpfs
	f.mu.Unlock()
	t1 := withFiles(task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY),
		[]*shoalv1.SecretReference{secretRef("s1", "db", nil)}, nil)
	t1.Status.State = shoalv1.TaskState_TASK_STATE_RUNNING
	a.Resume([]Record{{Task: t1, ContainerID: "c9"}})
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	f.exit("c9", 137)
	afterBackoff(t, clk, time.Millisecond)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 1)
	if id := <-f.started; id == "c9" {
		t.Fatal("no new container")
	}

	// A full set that does not list t1 stops it; a later Resume does
	// not bring it back.
	a.Update(true, nil, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_SHUTDOWN, 1)
	a.mu.Lock()
	prev := a.runners["t1"] // the stopped one, until it is gone
	a.mu.Unlock()
	a.Resume([]Record{{Task: t1, ContainerID: "c9"}})
	a.mu.Lock()
	now := a.runners["t1"]
	a.mu.Unlock()
	if now != nil && now != prev {
		t.Fatal("Resume after a full set started a runner")
	}
}

// A node that leaves its swarm stops its tasks, and forgets the secrets
// and configs it held for them: none stays in its memory, though no
// manager will ever say to drop them.
func TestLeaveForgetsFiles(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, stop := newAgent(t)
	defer stop()
	t1 := withFiles(task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY),
		[]*shoalv1.SecretReference{secretRef("s1", "db", nil)}, []*shoalv1.ConfigReference{configRef("c1", "app", nil)})
	a.UpdateFiles(true, []*shoalv1.Secret{{Id: "s1", Spec: &shoalv1.SecretSpec{Data: []byte("pw")}}},
		[]*shoalv1.Config{{Id: "c1", Spec: &shoalv1.ConfigSpec{Data: []byte("x")}}}, nil, nil)
	a.Update(true, []*shoalv1.Task{t1}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	<-f.started
	a.Leave()
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_SHUTDOWN, 0)
	waitReleased(t, f, "t1")
	if s, c := a.Files().Held(); len(s)+len(c) != 0 {
		t.Fatalf("after leaving the swarm the node still holds secrets %v and configs %v", s, c)
	}
}
