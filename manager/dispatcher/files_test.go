package dispatcher

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/store"
	"github.com/shoal-run/shoal/manager/store/storetest"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestNeedsFiles(t *testing.T) {
	task := func(node string, desired, state shoalv1.TaskState) *shoalv1.Task {
		return &shoalv1.Task{NodeId: node, DesiredState: desired, Status: &shoalv1.TaskStatus{State: state}}
	}
	run, shut, rm := shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.TaskState_TASK_STATE_SHUTDOWN, shoalv1.TaskState_TASK_STATE_REMOVE
	for _, tc := range []struct {
		t    *shoalv1.Task
		want bool
	}{
		{task("n1", run, shoalv1.TaskState_TASK_STATE_ASSIGNED), true},
		{task("n1", run, shoalv1.TaskState_TASK_STATE_PREPARING), true},
		{task("n1", run, run), true},
		{task("n1", run, shoalv1.TaskState_TASK_STATE_PENDING), false}, // not the node's yet
		{task("n2", run, run), false},                                  // another node's
		{task("n1", shut, run), true},                                  // being stopped: until it ends
		{task("n1", rm, run), true},
		{task("n1", shut, shut), false}, // ended: history only
		{task("n1", run, shoalv1.TaskState_TASK_STATE_COMPLETE), false},
		{task("n1", run, shoalv1.TaskState_TASK_STATE_FAILED), false},
		{task("n1", run, shoalv1.TaskState_TASK_STATE_REJECTED), false},
		{task("n1", rm, shoalv1.TaskState_TASK_STATE_ORPHANED), false},
	} {
		if got := needsFiles(tc.t, "n1"); got != tc.want {
			t.Errorf("needsFiles(%v) = %v; want %v", tc.t, got, tc.want)
		}
	}
}

func set(ids ...string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func TestFileDiff(t *testing.T) {
	for _, tc := range []struct {
		sent, want, present map[string]bool
		add, remove         []string
	}{
		{set(), set("a", "b"), set("a", "b"), []string{"a", "b"}, nil},
		{set("a"), set("a", "b"), set("a", "b"), []string{"b"}, nil},
		{set("a", "b"), set("b"), set("a", "b"), nil, []string{"a"}},
		{set(), set("a"), set(), nil, nil},              // not created yet: sent once it is
		{set("a"), set("a"), set(), nil, []string{"a"}}, // deleted from the store
		{set("a", "c"), set("b", "c"), set("b"), []string{"b"}, []string{"a", "c"}},
		{set(), set(), set(), nil, nil},
	} {
		add, remove := fileDiff(tc.sent, tc.want, tc.present)
		if !slices.Equal(add, tc.add) || !slices.Equal(remove, tc.remove) {
			t.Errorf("fileDiff(sent %v, want %v, present %v) = %v, %v; want %v, %v", tc.sent, tc.want, tc.present, add, remove, tc.add, tc.remove)
		}
	}
}

// Property: whatever was sent before, applying the diff leaves the node
// with exactly the wanted files that exist; nothing is both added and
// removed; nothing already sent is sent again.
func TestFileDiffProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := []string{"a", "b", "c", "d", "e", "f"}
	pick := func() map[string]bool {
		m := map[string]bool{}
		for _, id := range ids {
			if rng.IntN(2) == 0 {
				m[id] = true
			}
		}
		return m
	}
	for i := 0; i < 2000; i++ {
		sent, want, present := pick(), pick(), pick()
		add, remove := fileDiff(sent, want, present)
		after := map[string]bool{}
		for id := range sent {
			after[id] = true
		}
		for _, id := range add {
			if sent[id] {
				t.Fatalf("fileDiff(%v, %v, %v) sends %s again", sent, want, present, id)
			}
			after[id] = true
		}
		for _, id := range remove {
			if slices.Contains(add, id) {
				t.Fatalf("fileDiff(%v, %v, %v) adds and removes %s", sent, want, present, id)
			}
			delete(after, id)
		}
		for _, id := range ids {
			if after[id] != (want[id] && present[id]) {
				t.Fatalf("fileDiff(%v, %v, %v) = %v, %v: the node holds %s = %v; want %v", sent, want, present, add, remove, id, after[id], want[id] && present[id])
			}
		}
	}
}

// assignmentStream is the server side of one node's assignment stream.
type assignmentStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs chan *shoalv1.AssignmentsResponse
}

func (s *assignmentStream) Context() context.Context { return s.ctx }
func (s *assignmentStream) Send(m *shoalv1.AssignmentsResponse) error {
	select {
	case s.msgs <- proto.Clone(m).(*shoalv1.AssignmentsResponse):
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *assignmentStream) next(t *testing.T) *shoalv1.AssignmentsResponse {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no assignment message")
		return nil
	}
}

func (s *assignmentStream) none(t *testing.T) {
	t.Helper()
	select {
	case m := <-s.msgs:
		t.Fatalf("unexpected assignment message %v", summary(m))
	case <-time.After(100 * time.Millisecond):
	}
}

// summary names what a message carries, never secret data.
func summary(m *shoalv1.AssignmentsResponse) string {
	var tasks, secrets, configs []string
	for _, t := range m.GetTasks() {
		tasks = append(tasks, t.GetId())
	}
	for _, s := range m.GetSecrets() {
		secrets = append(secrets, s.GetId())
	}
	for _, c := range m.GetConfigs() {
		configs = append(configs, c.GetId())
	}
	return fmt.Sprintf("full=%v tasks=%v removed=%v secrets=%v configs=%v removed_secrets=%v removed_configs=%v",
		m.GetFull(), tasks, m.GetRemoved(), secrets, configs, m.GetRemovedSecrets(), m.GetRemovedConfigs())
}

func put(t *testing.T, d *Dispatcher, kind shoalv1.StoreActionKind, objs ...store.Object) {
	t.Helper()
	var b shoalv1.StoreBatch
	for _, o := range objs {
		a := &shoalv1.StoreAction{Kind: kind, Object: store.Wrap(o)}
		if kind != shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE {
			var cur store.Object
			d.cfg.Store.View(func(r store.ReadTx) {
				switch v := o.(type) {
				case *shoalv1.Task:
					cur = store.Get[*shoalv1.Task](r, store.TableTask, v.GetId())
				case *shoalv1.Secret:
					cur = store.Get[*shoalv1.Secret](r, store.TableSecret, v.GetId())
				}
			})
			a.ExpectedVersion = cur.GetMeta().GetVersion()
		}
		b.Actions = append(b.Actions, a)
	}
	if _, err := d.cfg.Raft.Propose(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
}

func secretObj(id, value string) *shoalv1.Secret {
	return &shoalv1.Secret{Id: id, Meta: &shoalv1.Meta{}, Spec: &shoalv1.SecretSpec{Name: "name-" + id, Data: []byte(value)}}
}

func fileTask(id, node string, state shoalv1.TaskState, secrets []string, configs []string) *shoalv1.Task {
	c := &shoalv1.ContainerSpec{Image: "img"}
	for _, s := range secrets {
		c.Secrets = append(c.Secrets, &shoalv1.SecretReference{SecretId: s, SecretName: "name-" + s, File: &shoalv1.FileTarget{Name: "name-" + s}})
	}
	for _, s := range configs {
		c.Configs = append(c.Configs, &shoalv1.ConfigReference{ConfigId: s, ConfigName: "name-" + s, File: &shoalv1.FileTarget{Name: "/name-" + s}})
	}
	return &shoalv1.Task{Id: id, Meta: &shoalv1.Meta{}, NodeId: node, ServiceId: "svc", DesiredState: shoalv1.TaskState_TASK_STATE_RUNNING,
		Status: &shoalv1.TaskStatus{State: state}, Spec: &shoalv1.TaskSpec{Container: c}}
}

func ids[T interface{ GetId() string }](objs []T) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetId())
	}
	slices.Sort(out)
	return out
}

// A node's stream carries exactly the secrets and configs its tasks that
// have not ended reference: the full set first; a newly needed one in
// the same message as the task; one created after its task as soon as it
// exists; removed once the last task needing it ended or went; never
// another node's.
func TestAssignmentsCarryTheNodesFiles(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the stream ended
	st := store.New()
	d := New(Config{Store: st, Raft: &storetest.Direct{Store: st}, Clock: clock.NewFake(time.Unix(0, 0)), Log: zap.NewNop(),
		HeartbeatPeriod: period, Leading: func() bool { return true }})
	run := shoalv1.TaskState_TASK_STATE_RUNNING
	create, update, del := shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE
	put(t, d, create, secretObj("s1", "one"), secretObj("s2", "two"), secretObj("s3", "three"),
		&shoalv1.Config{Id: "c1", Meta: &shoalv1.Meta{}, Spec: &shoalv1.ConfigSpec{Name: "name-c1", Data: []byte("conf")}})
	put(t, d, create,
		fileTask("t1", "n1", run, []string{"s1"}, []string{"c1"}),
		fileTask("t2", "n2", run, []string{"s2"}, nil),                                   // another node's
		fileTask("t3", "n1", shoalv1.TaskState_TASK_STATE_COMPLETE, []string{"s3"}, nil), // ended
	)

	ctx, cancel := context.WithCancel(auth.With(context.Background(), auth.Caller{NodeID: "n1"}))
	s := &assignmentStream{ctx: ctx, msgs: make(chan *shoalv1.AssignmentsResponse, 16)}
	done := make(chan error, 1)
	go func() { done <- d.Assignments(&shoalv1.AssignmentsRequest{}, s) }()
	defer func() { cancel(); <-done }()

	m := s.next(t)
	if !m.GetFull() || !slices.Equal(ids(m.GetTasks()), []string{"t1", "t3"}) || !slices.Equal(ids(m.GetSecrets()), []string{"s1"}) ||
		!slices.Equal(ids(m.GetConfigs()), []string{"c1"}) {
		t.Fatalf("full message: %s; want tasks t1 t3, secret s1 (not s2: n2's; not s3: its task ended), config c1", summary(m))
	}
	if got := string(m.GetSecrets()[0].GetSpec().GetData()); got != "one" {
		t.Fatalf("secret s1 carries %d bytes, not its value", len(got))
	}

	put(t, d, create, fileTask("t4", "n1", shoalv1.TaskState_TASK_STATE_ASSIGNED, []string{"s2", "s1"}, nil))
	if m := s.next(t); !slices.Equal(ids(m.GetTasks()), []string{"t4"}) || !slices.Equal(ids(m.GetSecrets()), []string{"s2"}) {
		t.Fatalf("new task: %s; want task t4 with secret s2 (s1 was sent)", summary(m))
	}

	// A secret created after the task naming it is sent once it exists.
	put(t, d, create, fileTask("t5", "n1", shoalv1.TaskState_TASK_STATE_ASSIGNED, []string{"s4"}, nil))
	if m := s.next(t); !slices.Equal(ids(m.GetTasks()), []string{"t5"}) || len(m.GetSecrets()) != 0 {
		t.Fatalf("task naming a missing secret: %s; want task t5 alone", summary(m))
	}
	put(t, d, create, secretObj("s4", "four"))
	if m := s.next(t); len(m.GetTasks()) != 0 || !slices.Equal(ids(m.GetSecrets()), []string{"s4"}) {
		t.Fatalf("secret created late: %s; want secret s4 alone", summary(m))
	}
	// Another node's secret, written: nothing for n1.
	put(t, d, create, secretObj("s9", "nine"))
	s.none(t)
	// Another node's new task, naming it: still nothing.
	put(t, d, create, fileTask("t6", "n2", shoalv1.TaskState_TASK_STATE_ASSIGNED, []string{"s9"}, nil))
	s.none(t)

	// Being stopped, t1 still needs its files; ended, it does not.
	t1 := fileTask("t1", "n1", run, []string{"s1"}, []string{"c1"})
	t1.DesiredState = shoalv1.TaskState_TASK_STATE_SHUTDOWN
	put(t, d, update, t1)
	if m := s.next(t); len(m.GetRemovedSecrets())+len(m.GetRemovedConfigs()) != 0 {
		t.Fatalf("task being stopped: %s; want no files removed", summary(m))
	}
	t1 = proto.Clone(t1).(*shoalv1.Task)
	t1.Status.State = shoalv1.TaskState_TASK_STATE_SHUTDOWN
	put(t, d, update, t1)
	if m := s.next(t); len(m.GetRemovedSecrets()) != 0 || !slices.Equal(m.GetRemovedConfigs(), []string{"c1"}) {
		t.Fatalf("t1 ended: %s; want config c1 removed, s1 kept (t4 needs it)", summary(m))
	}

	// The last task needing s1 and s2 goes.
	put(t, d, del, fileTask("t4", "n1", shoalv1.TaskState_TASK_STATE_ASSIGNED, nil, nil))
	if m := s.next(t); !slices.Equal(m.GetRemoved(), []string{"t4"}) || !slices.Equal(m.GetRemovedSecrets(), []string{"s1", "s2"}) {
		t.Fatalf("t4 removed: %s; want task t4 and secrets s1 s2 removed", summary(m))
	}

	// A secret deleted from the store leaves the node.
	put(t, d, del, secretObj("s4", ""))
	if m := s.next(t); !slices.Equal(m.GetRemovedSecrets(), []string{"s4"}) {
		t.Fatalf("s4 deleted: %s; want secret s4 removed", summary(m))
	}
}
