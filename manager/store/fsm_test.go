package store

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// fakeSink is a raft.SnapshotSink in memory.
type fakeSink struct {
	buf      bytes.Buffer
	closed   bool
	canceled bool
	failWith error
}

func (s *fakeSink) Write(p []byte) (int, error) {
	if s.failWith != nil {
		return 0, s.failWith
	}
	return s.buf.Write(p)
}
func (s *fakeSink) Close() error  { s.closed = true; return nil }
func (s *fakeSink) ID() string    { return "fake" }
func (s *fakeSink) Cancel() error { s.canceled = true; return nil }
func (s *fakeSink) Bytes() []byte { return s.buf.Bytes() }
func (s *fakeSink) Reader() *rc   { return &rc{Reader: bytes.NewReader(s.buf.Bytes())} }

var _ raft.SnapshotSink = (*fakeSink)(nil)

// rc is an io.ReadCloser that records Close.
type rc struct {
	io.Reader
	closed bool
}

func (r *rc) Close() error { r.closed = true; return nil }

func newFSM(t *testing.T) (*FSM, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return &FSM{Store: New(), Log: zap.New(core)}, logs
}

func entry(t *testing.T, idx uint64, actions ...*shoalv1.StoreAction) *raft.Log {
	t.Helper()
	data, err := EncodeBatch(batch(actions...))
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
}

func TestEncodeBatch(t *testing.T) {
	b := batch(create(svc("s1", "web")))
	data, err := EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 2 || EntryType(data[0]) != EntryBatch {
		t.Fatalf("EncodeBatch = %x; want type byte %d first", data, EntryBatch)
	}
	var back shoalv1.StoreBatch
	if err := proto.Unmarshal(data[1:], &back); err != nil || !proto.Equal(&back, b) {
		t.Errorf("payload decodes to %v (%v); want %v", &back, err, b)
	}
}

func TestFSMApply(t *testing.T) {
	f, logs := newFSM(t)
	if res := f.Apply(entry(t, 10, create(svc("s1", "web")))); res != nil {
		t.Fatalf("Apply = %v; want nil", res)
	}
	if got := getSvc(f.Store, "s1"); got.GetMeta().GetVersion() != 10 || f.Store.Index() != 10 {
		t.Errorf("after Apply at 10: %v, index %d", got, f.Store.Index())
	}

	// A refused batch: the proposer gets the store's error back.
	before := dump(f.Store)
	res := f.Apply(entry(t, 11, update(svc("s1", "web"), 3)))
	err, ok := res.(error)
	if !ok {
		t.Fatalf("Apply(stale) = %#v; want an error", res)
	}
	if !errdefs.Is(err, errdefs.ErrConflict) {
		t.Errorf("Apply(stale) = %v; want a conflict", err)
	}
	if !proto.Equal(dump(f.Store), before) {
		t.Error("refused entry changed the store")
	}
	if logs.Len() != 0 {
		t.Errorf("a refused batch is no FSM problem, but logged %v", logs.All())
	}
}

func TestFSMApplySkips(t *testing.T) {
	valid, err := EncodeBatch(batch(create(svc("s1", "web"))))
	if err != nil {
		t.Fatal(err)
	}
	unknownType := append([]byte{200}, valid[1:]...)

	for _, tc := range []struct {
		name    string
		log     *raft.Log
		wantLog bool
	}{
		{"unknown entry type", &raft.Log{Index: 5, Type: raft.LogCommand, Data: unknownType}, true},
		{"unknown type, no payload", &raft.Log{Index: 5, Type: raft.LogCommand, Data: []byte{77}}, true},
		{"empty command", &raft.Log{Index: 5, Type: raft.LogCommand}, false},
		{"noop", &raft.Log{Index: 5, Type: raft.LogNoop, Data: valid}, false},
		{"barrier", &raft.Log{Index: 5, Type: raft.LogBarrier, Data: valid}, false},
		{"configuration", &raft.Log{Index: 5, Type: raft.LogConfiguration, Data: valid}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, logs := newFSM(t)
			if res := f.Apply(tc.log); res != nil {
				t.Errorf("Apply = %v; want nil (skipped)", res)
			}
			if got := f.Store.Snapshot(); len(got.GetServices()) != 0 {
				t.Errorf("skipped entry created %v", got.GetServices())
			}
			warned := logs.FilterLevelExact(zapcore.WarnLevel).All()
			if tc.wantLog {
				if len(warned) != 1 {
					t.Fatalf("logged %v; want one warning", logs.All())
				}
				fields := warned[0].ContextMap()
				if fields["index"] != uint64(5) || fields["type"] != uint8(tc.log.Data[0]) {
					t.Errorf("warning fields = %v; want index 5 and type %d", fields, tc.log.Data[0])
				}
			} else if len(warned) != 0 {
				t.Errorf("logged %v; want nothing", warned)
			}
		})
	}

	// After skipping, the next known entry still applies.
	f, _ := newFSM(t)
	f.Apply(&raft.Log{Index: 5, Type: raft.LogCommand, Data: unknownType})
	if res := f.Apply(entry(t, 6, create(svc("s1", "web")))); res != nil {
		t.Fatalf("Apply after skip = %v", res)
	}
	if got := getSvc(f.Store, "s1"); got.GetMeta().GetVersion() != 6 {
		t.Errorf("after skip: %v", got)
	}
}

func TestFSMApplyCorruptEntry(t *testing.T) {
	f, _ := newFSM(t)
	res := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: []byte{byte(EntryBatch), 0xff, 0xff, 0xff}})
	if err, ok := res.(error); !ok || err == nil {
		t.Fatalf("Apply(corrupt) = %#v; want an error", res)
	}
	if f.Store.Index() != 3 || len(dump(f.Store).GetServices()) != 0 {
		t.Errorf("corrupt entry: index %d, %d services; want index 3 (applied as a no-op) and no services", f.Store.Index(), len(dump(f.Store).GetServices()))
	}
}

// populate writes one or more objects of every kind, through the FSM as
// Raft would, and returns the index of the last entry.
func populate(t *testing.T, f *FSM) uint64 {
	t.Helper()
	ts := timestamppb.New(time.Date(2030, 3, 4, 5, 6, 7, 8, time.UTC))
	cluster := &shoalv1.Cluster{
		Id:         "c1",
		Meta:       &shoalv1.Meta{CreatedAt: ts},
		Spec:       &shoalv1.ClusterSpec{Name: "default", TaskHistoryLimit: 5, NodeCertExpiry: durationpb.New(time.Hour)},
		RootCa:     &shoalv1.RootCA{CertPem: []byte("cert"), KeyPem: []byte("key"), Digest: "d"},
		JoinTokens: &shoalv1.JoinTokens{Worker: "w", Manager: "m"},
	}
	n := node("n1", "host1")
	n.Role = shoalv1.NodeRole_NODE_ROLE_MANAGER
	n.Spec = &shoalv1.NodeSpec{Labels: map[string]string{"zone": "a"}, Availability: shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN}
	s := withLabel(svc("s1", "web"), "tier", "front")
	s.Spec.Mode = &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 3}}
	tk := task("t1", "s1", "n1")
	tk.Slot = 2
	tk.Status = &shoalv1.TaskStatus{Message: "running", ExitCode: 3, Timestamp: ts}
	entries := []*raft.Log{
		entry(t, 3, create(cluster), create(n)),
		entry(t, 4, create(s), create(svc("s2", "api")), create(tk), create(task("t2", "s2", ""))),
		entry(t, 6,
			create(&shoalv1.Network{Id: "net1", Spec: &shoalv1.NetworkSpec{Name: "overlay", Subnet: "10.0.0.0/24"}}),
			create(&shoalv1.Secret{Id: "sec1", Spec: &shoalv1.SecretSpec{Name: "pw"}}),
			create(&shoalv1.Config{Id: "cfg1", Spec: &shoalv1.ConfigSpec{Name: "conf"}}),
		),
		entry(t, 9, update(withLabel(svc("s2", "api"), "v", "2"), 4), del(task("t2", "", ""), 4)),
	}
	for _, e := range entries {
		if res := f.Apply(e); res != nil {
			t.Fatalf("Apply(%d) = %v", e.Index, res)
		}
	}
	return 9
}

func persist(t *testing.T, f *FSM) *fakeSink {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &fakeSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.canceled {
		t.Errorf("Persist left sink closed=%v canceled=%v; want closed", sink.closed, sink.canceled)
	}
	return sink
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src, _ := newFSM(t)
	idx := populate(t, src)
	want := dump(src.Store)
	if n := len(want.GetClusters()) + len(want.GetNodes()) + len(want.GetServices()) + len(want.GetTasks()) +
		len(want.GetNetworks()) + len(want.GetSecrets()) + len(want.GetConfigs()); n != 8 {
		t.Fatalf("fixture holds %d objects; want 8", n)
	}

	sink := persist(t, src)

	dst, _ := newFSM(t)
	// The destination had its own state, which the restore replaces.
	if res := dst.Apply(entry(t, 2, create(svc("stale", "stale")), create(svc("s9", "web")))); res != nil {
		t.Fatal(res)
	}
	r := sink.Reader()
	if err := dst.Restore(r); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !r.closed {
		t.Error("Restore did not close the reader")
	}
	got := dump(dst.Store)
	if !proto.Equal(got, want) {
		t.Errorf("restored store differs:\n got %v\nwant %v", got, want)
	}
	if dst.Store.Index() != idx {
		t.Errorf("restored index = %d; want %d", dst.Store.Index(), idx)
	}

	// The indexes work on the restored store.
	dst.Store.View(func(r ReadTx) {
		if s, err := Find[*shoalv1.Service](r, TableService, "web", "service"); err != nil || s.GetId() != "s1" {
			t.Errorf("Find(web) after restore = %v, %v", s, err)
		}
		if ts := ListBy[*shoalv1.Task](r, TableTask, "node", "n1"); len(ts) != 1 || ts[0].GetId() != "t1" {
			t.Errorf("ListBy(node=n1) after restore = %v", ts)
		}
		if ns := ByName[*shoalv1.Node](r, TableNode, "host1"); len(ns) != 1 {
			t.Errorf("ByName(host1) after restore = %v", ns)
		}
	})
	// Unique names and versions still hold.
	if res := dst.Apply(entry(t, 10, create(svc("s3", "web")))); !errdefs.Is(asErr(res), errdefs.ErrAlreadyExists) {
		t.Errorf("duplicate name after restore: Apply = %v; want already exists", res)
	}
	if res := dst.Apply(entry(t, 10, update(svc("s2", "api"), 4))); !errdefs.Is(asErr(res), errdefs.ErrConflict) {
		t.Errorf("stale update after restore: Apply = %v; want conflict", res)
	}
	if res := dst.Apply(entry(t, 10, update(svc("s2", "api"), 9))); res != nil {
		t.Errorf("update at the restored version: Apply = %v", res)
	}

	// And the restored store snapshots to the same bytes' worth of state.
	again := persist(t, dst)
	third, _ := newFSM(t)
	if err := third.Restore(again.Reader()); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(dump(third.Store), dump(dst.Store)) || third.Store.Index() != 10 {
		t.Error("second round trip differs")
	}
}

func asErr(v any) error {
	err, _ := v.(error)
	return err
}

func TestSnapshotEmptyStore(t *testing.T) {
	src, _ := newFSM(t)
	sink := persist(t, src)
	dst, _ := newFSM(t)
	populate(t, dst)
	if err := dst.Restore(sink.Reader()); err != nil {
		t.Fatal(err)
	}
	if got := dump(dst.Store); !proto.Equal(got, &shoalv1.StoreSnapshot{}) || dst.Store.Index() != 0 {
		t.Errorf("restoring an empty snapshot left %v at index %d", got, dst.Store.Index())
	}
}

// TestSnapshotIsPointInTime checks that the state persisted is the state at
// Snapshot(), even when entries are applied while Persist runs, as Raft
// does.
func TestSnapshotIsPointInTime(t *testing.T) {
	src, _ := newFSM(t)
	idx := populate(t, src)
	want := dump(src.Store)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &fakeSink{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := snap.Persist(sink); err != nil {
			t.Errorf("Persist: %v", err)
		}
	}()
	for i := uint64(1); i <= 50; i++ {
		if res := src.Apply(entry(t, idx+i, update(withLabel(svc("s1", "web"), "n", "x"), 0))); res != nil {
			t.Fatal(res)
		}
	}
	wg.Wait()
	snap.Release()

	dst, _ := newFSM(t)
	if err := dst.Restore(sink.Reader()); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(dump(dst.Store), want) || dst.Store.Index() != idx {
		t.Errorf("snapshot taken at %d restored to index %d with different objects", idx, dst.Store.Index())
	}
}

func TestPersistSinkFailure(t *testing.T) {
	f, _ := newFSM(t)
	populate(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	sink := &fakeSink{failWith: boom}
	if err := snap.Persist(sink); !errors.Is(err, boom) {
		t.Errorf("Persist = %v; want %v", err, boom)
	}
	if !sink.canceled || sink.closed {
		t.Errorf("failed Persist: canceled=%v closed=%v; want canceled, not closed", sink.canceled, sink.closed)
	}
}

func TestRestoreRefusesBadData(t *testing.T) {
	good := func() []byte {
		f, _ := newFSM(t)
		populate(t, f)
		return persist(t, f).Bytes()
	}()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short header", good[:5]},
		{"unknown version", append([]byte{2}, good[1:]...)},
		{"corrupt body", append(bytes.Clone(good[:9]), 0xff, 0xff, 0xff)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newFSM(t)
			populate(t, f)
			before, idx := dump(f.Store), f.Store.Index()
			r := &rc{Reader: bytes.NewReader(tc.data)}
			if err := f.Restore(r); err == nil {
				t.Fatal("Restore accepted bad data")
			}
			if !r.closed {
				t.Error("Restore did not close the reader")
			}
			if !proto.Equal(dump(f.Store), before) || f.Store.Index() != idx {
				t.Error("a failed Restore changed the store")
			}
		})
	}
}
