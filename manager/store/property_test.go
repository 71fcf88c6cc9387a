package store

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The oracle: a plain map of what each table should hold.

type modelObj struct {
	name    string // service name, node hostname, task's service ID
	label   string
	version uint64
	created int64 // meta.created_at, seconds
}

type modelKey struct{ table, id string }

type model map[modelKey]modelObj

// propTables are the tables the property exercises: one with unique names,
// one with repeatable names, one without names.
var propTables = []string{TableService, TableNode, TableTask}

func makeObj(table, id, name, label string, created int64) Object {
	meta := &shoalv1.Meta{CreatedAt: timestamppb.New(timestampOf(created))}
	labels := map[string]string{"l": label}
	switch table {
	case TableService:
		return &shoalv1.Service{Id: id, Meta: meta, Spec: &shoalv1.ServiceSpec{Name: name, Labels: labels}}
	case TableNode:
		return &shoalv1.Node{Id: id, Meta: meta, Description: &shoalv1.NodeDescription{Hostname: name}, Spec: &shoalv1.NodeSpec{Labels: labels}}
	case TableTask:
		return &shoalv1.Task{Id: id, Meta: meta, ServiceId: name, Status: &shoalv1.TaskStatus{Message: label}}
	}
	panic(table)
}

func timestampOf(sec int64) time.Time { return time.Unix(1_900_000_000+sec, 0) }

func rlog(idx uint64, data []byte) *raft.Log {
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
}

func describe(table string, o Object) (name, label string) {
	switch v := o.(type) {
	case *shoalv1.Service:
		return v.GetSpec().GetName(), v.GetSpec().GetLabels()["l"]
	case *shoalv1.Node:
		return v.GetDescription().GetHostname(), v.GetSpec().GetLabels()["l"]
	case *shoalv1.Task:
		return v.GetServiceId(), v.GetStatus().GetMessage()
	}
	panic(table)
}

type propAction struct {
	kind     shoalv1.StoreActionKind
	table    string
	id, name string
	label    string
	created  int64
	expected uint64
}

func (a propAction) String() string {
	return fmt.Sprintf("%v %s/%s name=%s label=%s expect=%d", a.kind, a.table, a.id, a.name, a.label, a.expected)
}

func (a propAction) storeAction() *shoalv1.StoreAction {
	return &shoalv1.StoreAction{
		Kind:            a.kind,
		Object:          Wrap(makeObj(a.table, a.id, a.name, a.label, a.created)),
		ExpectedVersion: a.expected,
	}
}

// apply runs a on m (in place) as the store should, returning the error
// category of a refusal.
func (m model) apply(a propAction, idx uint64) error {
	k := modelKey{a.table, a.id}
	cur, exists := m[k]
	switch a.kind {
	case kCreate:
		if exists {
			return errdefs.ErrAlreadyExists
		}
	case kUpdate, kDelete:
		if !exists {
			return errdefs.ErrNotFound
		}
		if a.expected != 0 && a.expected != cur.version {
			return errdefs.ErrConflict
		}
	}
	if a.kind == kDelete {
		delete(m, k)
		return nil
	}
	if a.table == TableService {
		for ok, o := range m {
			if ok.table == a.table && ok.id != a.id && o.name == a.name {
				return errdefs.ErrAlreadyExists
			}
		}
	}
	created := a.created
	if exists {
		created = cur.created // created_at survives updates
	}
	m[k] = modelObj{name: a.name, label: a.label, version: idx, created: created}
	return nil
}

type propState struct {
	fsm     *FSM
	events  <-chan *shoalv1.StoreEvent
	cancel  func()
	model   model
	idx     uint64 // the next Raft index
	applied uint64 // the index of the last entry applied
}

func (st *propState) watch() {
	if st.cancel != nil {
		st.cancel()
	}
	st.events, st.cancel = st.fsm.Store.Watch()
}

func drawAction(t *rapid.T, st *propState) propAction {
	a := propAction{
		kind:    rapid.SampledFrom([]shoalv1.StoreActionKind{kCreate, kUpdate, kDelete}).Draw(t, "kind"),
		table:   rapid.SampledFrom(propTables).Draw(t, "table"),
		id:      rapid.SampledFrom([]string{"a", "b", "c", "d"}).Draw(t, "id"),
		name:    rapid.SampledFrom([]string{"x", "y", "z"}).Draw(t, "name"),
		label:   strconv.Itoa(rapid.IntRange(0, 9).Draw(t, "label")),
		created: int64(st.idx),
	}
	if a.kind != kCreate {
		cur := st.model[modelKey{a.table, a.id}].version
		switch rapid.SampledFrom([]string{"skip", "read", "stale"}).Draw(t, "expect") {
		case "read":
			a.expected = cur
		case "stale":
			a.expected = rapid.Uint64Range(1, st.idx+1).Draw(t, "stale version")
		}
	}
	return a
}

// TestPropertyStoreMatchesOracle applies random batches of create, update
// and delete actions, some of them doomed (duplicate IDs and names, missing
// objects, stale versions), and checks after every step that the store, its
// versions, its index and its event stream match a plain map. It also
// snapshots and restores the store midway, and carries on with the
// restored copy.
func TestPropertyStoreMatchesOracle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		st := &propState{fsm: &FSM{Store: New(), Log: zap.NewNop()}, model: model{}, idx: 1}
		st.watch()
		defer func() { st.cancel() }()

		t.Repeat(map[string]func(*rapid.T){
			"batch": func(t *rapid.T) {
				n := rapid.IntRange(1, 3).Draw(t, "batch size")
				var actions []propAction
				var raw []*shoalv1.StoreAction
				for i := 0; i < n; i++ {
					a := drawAction(t, st)
					actions = append(actions, a)
					raw = append(raw, a.storeAction())
				}
				idx := st.idx
				st.idx++

				// What the oracle expects.
				next := maps.Clone(st.model)
				var wantErr error
				var wantEvents []wantEvent
				for _, a := range actions {
					prevVer := next[modelKey{a.table, a.id}].version
					if err := next.apply(a, idx); err != nil {
						wantErr = err
						break
					}
					objVer := idx
					if a.kind == kDelete {
						objVer = prevVer
					}
					wantEvents = append(wantEvents, wantEvent{a.kind, a.id, idx, objVer})
				}

				data, err := EncodeBatch(batch(raw...))
				if err != nil {
					t.Fatal(err)
				}
				res := st.fsm.Apply(rlog(idx, data))
				gotErr, _ := res.(error)
				// Every entry the FSM sees is applied, a refused one as a
				// no-op, so the index moves either way.
				st.applied = idx
				if wantErr == nil {
					if gotErr != nil {
						t.Fatalf("batch %v at %d refused: %v; the oracle accepts it", actions, idx, gotErr)
					}
					st.model = next
				} else {
					if gotErr == nil {
						t.Fatalf("batch %v at %d accepted; the oracle refuses it (%v)", actions, idx, wantErr)
					}
					if !errdefs.Is(gotErr, wantErr) {
						t.Fatalf("batch %v at %d refused with %v; want %v", actions, idx, gotErr, wantErr)
					}
					wantEvents = nil
				}
				checkEventsRapid(t, drain(st.events), wantEvents)
			},
			"snapshot and restore": func(t *rapid.T) {
				snap, err := st.fsm.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				sink := &fakeSink{}
				if err := snap.Persist(sink); err != nil {
					t.Fatal(err)
				}
				st.cancel()
				st.fsm = &FSM{Store: New(), Log: zap.NewNop()}
				if err := st.fsm.Restore(sink.Reader()); err != nil {
					t.Fatal(err)
				}
				st.cancel = nil
				st.watch()
			},
			"": func(t *rapid.T) { checkAgainstModel(t, st) },
		})
	})
}

func checkEventsRapid(t *rapid.T, got []*shoalv1.StoreEvent, want []wantEvent) {
	if len(got) != len(want) {
		t.Fatalf("got %d events; want %d (%v)", len(got), len(want), want)
	}
	for i, w := range want {
		_, obj, err := split(got[i].GetObject())
		if err != nil {
			t.Fatal(err)
		}
		if got[i].GetKind() != w.kind || obj.GetId() != w.id || got[i].GetVersion() != w.version || obj.GetMeta().GetVersion() != w.objVer {
			t.Fatalf("event %d = %v %s v%d (object v%d); want %+v", i, got[i].GetKind(), obj.GetId(), got[i].GetVersion(), obj.GetMeta().GetVersion(), w)
		}
	}
}

func checkAgainstModel(t *rapid.T, st *propState) {
	s := st.fsm.Store
	if s.Index() != st.applied {
		t.Fatalf("Index() = %d; want %d (last applied entry)", s.Index(), st.applied)
	}
	s.View(func(r ReadTx) {
		for _, table := range propTables {
			var wantIDs []string
			for k := range st.model {
				if k.table == table {
					wantIDs = append(wantIDs, k.id)
				}
			}
			slices.Sort(wantIDs)
			objs := List[Object](r, table)
			var gotIDs []string
			for _, o := range objs {
				gotIDs = append(gotIDs, o.GetId())
			}
			if !slices.Equal(gotIDs, wantIDs) {
				t.Fatalf("%s holds %v; want %v", table, gotIDs, wantIDs)
			}
			for _, o := range objs {
				want := st.model[modelKey{table, o.GetId()}]
				name, label := describe(table, o)
				got := modelObj{name: name, label: label, version: o.GetMeta().GetVersion(), created: o.GetMeta().GetCreatedAt().GetSeconds() - 1_900_000_000}
				if got != want {
					t.Fatalf("%s/%s = %+v; want %+v", table, o.GetId(), got, want)
				}
			}
		}
		// Names resolve to the one service holding them.
		for k, o := range st.model {
			if k.table != TableService {
				continue
			}
			found, err := Find[*shoalv1.Service](r, TableService, o.name, "service")
			if err != nil || found.GetId() != k.id {
				t.Fatalf("Find(%q) = %v, %v; want %s", o.name, found.GetId(), err, k.id)
			}
		}
	})
}
