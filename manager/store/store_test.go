package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Builders for objects and actions.

func svc(id, name string) *shoalv1.Service {
	return &shoalv1.Service{Id: id, Spec: &shoalv1.ServiceSpec{Name: name}}
}

func withLabel(s *shoalv1.Service, k, v string) *shoalv1.Service {
	s.Spec.Labels = map[string]string{k: v}
	return s
}

func node(id, hostname string) *shoalv1.Node {
	return &shoalv1.Node{Id: id, Description: &shoalv1.NodeDescription{Hostname: hostname}}
}

func task(id, serviceID, nodeID string) *shoalv1.Task {
	return &shoalv1.Task{Id: id, ServiceId: serviceID, NodeId: nodeID}
}

func create(o Object) *shoalv1.StoreAction {
	return &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: Wrap(o)}
}

func update(o Object, expected uint64) *shoalv1.StoreAction {
	return &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: Wrap(o), ExpectedVersion: expected}
}

func del(o Object, expected uint64) *shoalv1.StoreAction {
	return &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE, Object: Wrap(o), ExpectedVersion: expected}
}

func batch(actions ...*shoalv1.StoreAction) *shoalv1.StoreBatch {
	return &shoalv1.StoreBatch{Actions: actions}
}

func mustApply(t *testing.T, s *Store, idx uint64, actions ...*shoalv1.StoreAction) {
	t.Helper()
	if err := s.Apply(batch(actions...), idx); err != nil {
		t.Fatalf("Apply at %d: %v", idx, err)
	}
}

func getSvc(s *Store, id string) *shoalv1.Service {
	var out *shoalv1.Service
	s.View(func(r ReadTx) { out = Get[*shoalv1.Service](r, TableService, id) })
	return out
}

func wantErr(t *testing.T, err, cat error, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want %v", cat)
	}
	if !errdefs.Is(err, cat) {
		t.Errorf("error %q is not %v", err, cat)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Errorf("error %q does not mention %q", err, contains)
	}
}

// dump is the whole store in a comparable form.
func dump(s *Store) *shoalv1.StoreSnapshot { return s.Snapshot() }

func TestCreateUpdateDelete(t *testing.T) {
	s := New()
	if s.Index() != 0 {
		t.Fatalf("new store at index %d", s.Index())
	}

	mustApply(t, s, 5, create(withLabel(svc("s1", "web"), "v", "1")))
	got := getSvc(s, "s1")
	if got == nil || got.GetSpec().GetName() != "web" || got.GetSpec().GetLabels()["v"] != "1" {
		t.Fatalf("after create: %v", got)
	}
	if got.GetMeta().GetVersion() != 5 || s.Index() != 5 {
		t.Errorf("after create at 5: version %d, index %d; want 5, 5", got.GetMeta().GetVersion(), s.Index())
	}

	mustApply(t, s, 7, update(withLabel(svc("s1", "web"), "v", "2"), 5))
	got = getSvc(s, "s1")
	if got.GetSpec().GetLabels()["v"] != "2" || got.GetMeta().GetVersion() != 7 || s.Index() != 7 {
		t.Errorf("after update at 7: %v, index %d; want label v=2 at version 7", got, s.Index())
	}

	mustApply(t, s, 9, del(svc("s1", ""), 7))
	if got := getSvc(s, "s1"); got != nil {
		t.Errorf("after delete: %v still there", got)
	}
	if s.Index() != 9 {
		t.Errorf("index after delete = %d; want 9", s.Index())
	}
	// The name is free again.
	mustApply(t, s, 10, create(svc("s2", "web")))
}

// TestEveryTable checks create, read, update and delete for each kind of
// object, with and without a Meta set by the writer.
func TestEveryTable(t *testing.T) {
	for _, tc := range []struct {
		table string
		obj   func(id, name string) Object
	}{
		{TableCluster, func(id, n string) Object { return &shoalv1.Cluster{Id: id, Spec: &shoalv1.ClusterSpec{Name: n}} }},
		{TableNode, func(id, n string) Object { return node(id, n) }},
		{TableService, func(id, n string) Object { return svc(id, n) }},
		{TableTask, func(id, n string) Object { return &shoalv1.Task{Id: id, ServiceId: n} }},
		{TableNetwork, func(id, n string) Object { return &shoalv1.Network{Id: id, Spec: &shoalv1.NetworkSpec{Name: n}} }},
		{TableSecret, func(id, n string) Object { return &shoalv1.Secret{Id: id, Spec: &shoalv1.SecretSpec{Name: n}} }},
		{TableConfig, func(id, n string) Object { return &shoalv1.Config{Id: id, Spec: &shoalv1.ConfigSpec{Name: n}} }},
	} {
		t.Run(tc.table, func(t *testing.T) {
			s := New()
			a := tc.obj("a", "alpha")
			b := tc.obj("b", "beta")
			if a.GetMeta() != nil {
				t.Fatal("fixture has a meta")
			}
			mustApply(t, s, 3, create(a), create(b))
			var got []Object
			s.View(func(r ReadTx) { got = List[Object](r, tc.table) })
			if len(got) != 2 || got[0].GetId() != "a" || got[1].GetId() != "b" {
				t.Fatalf("List = %v; want a, b", got)
			}
			for _, o := range got {
				if o.GetMeta().GetVersion() != 3 {
					t.Errorf("%s version = %d; want 3 (meta created by the store)", o.GetId(), o.GetMeta().GetVersion())
				}
			}
			// The caller's object was not changed.
			if a.GetMeta() != nil {
				t.Error("Apply set a meta on the caller's object")
			}
			mustApply(t, s, 4, update(tc.obj("a", "alpha"), 3), del(tc.obj("b", ""), 3))
			s.View(func(r ReadTx) {
				all := List[Object](r, tc.table)
				if len(all) != 1 || all[0].GetId() != "a" || all[0].GetMeta().GetVersion() != 4 {
					t.Errorf("after update a, delete b: %v", all)
				}
				// Other tables are untouched.
				for _, other := range []string{TableCluster, TableNode, TableService, TableTask, TableNetwork, TableSecret, TableConfig} {
					if other != tc.table && len(List[Object](r, other)) != 0 {
						t.Errorf("table %s is not empty", other)
					}
				}
			})
		})
	}
}

func TestMetaTimes(t *testing.T) {
	s := New()
	t1 := timestamppb.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	t2 := timestamppb.New(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
	t3 := timestamppb.New(time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC))

	o := svc("s1", "web")
	o.Meta = &shoalv1.Meta{Version: 999, CreatedAt: t1}
	mustApply(t, s, 2, create(o))
	got := getSvc(s, "s1")
	if got.GetMeta().GetVersion() != 2 {
		t.Errorf("version = %d; the writer's version must be replaced by the index 2", got.GetMeta().GetVersion())
	}
	if !proto.Equal(got.GetMeta().GetCreatedAt(), t1) {
		t.Errorf("created_at = %v; want %v", got.GetMeta().GetCreatedAt(), t1)
	}
	if !proto.Equal(got.GetMeta().GetUpdatedAt(), t1) {
		t.Errorf("updated_at on create = %v; want created_at %v", got.GetMeta().GetUpdatedAt(), t1)
	}

	// An update that tries to move created_at, or forgets it, keeps the
	// original.
	for i, m := range []*shoalv1.Meta{
		{CreatedAt: t2, UpdatedAt: t2},
		nil,
		{UpdatedAt: t3},
	} {
		idx := uint64(10 + i)
		u := svc("s1", "web")
		u.Meta = m
		mustApply(t, s, idx, update(u, 0))
		got := getSvc(s, "s1")
		if !proto.Equal(got.GetMeta().GetCreatedAt(), t1) {
			t.Errorf("update %d: created_at = %v; want %v preserved", i, got.GetMeta().GetCreatedAt(), t1)
		}
		if got.GetMeta().GetVersion() != idx {
			t.Errorf("update %d: version = %d; want %d", i, got.GetMeta().GetVersion(), idx)
		}
		if m.GetUpdatedAt() != nil && !proto.Equal(got.GetMeta().GetUpdatedAt(), m.GetUpdatedAt()) {
			t.Errorf("update %d: updated_at = %v; want the writer's %v", i, got.GetMeta().GetUpdatedAt(), m.GetUpdatedAt())
		}
	}
}

func TestApplyDoesNotAlias(t *testing.T) {
	s := New()
	o := withLabel(svc("s1", "web"), "v", "1")
	mustApply(t, s, 1, create(o))
	// Changing the written object afterwards must not reach the store.
	o.Spec.Name = "changed"
	o.Spec.Labels["v"] = "changed"
	got := getSvc(s, "s1")
	if got.GetSpec().GetName() != "web" || got.GetSpec().GetLabels()["v"] != "1" {
		t.Errorf("store shares memory with the caller's object: %v", got)
	}
	if o.GetMeta() != nil {
		t.Errorf("Apply wrote meta %v into the caller's object", o.GetMeta())
	}
}

func TestOptimisticConcurrency(t *testing.T) {
	for _, kind := range []string{"update", "delete"} {
		t.Run(kind, func(t *testing.T) {
			s := New()
			mustApply(t, s, 3, create(withLabel(svc("s1", "web"), "v", "1")))
			mustApply(t, s, 4, update(withLabel(svc("s1", "web"), "v", "2"), 3))
			before := dump(s)
			events, cancel := s.Watch()
			defer cancel()

			// A writer that read version 3 is refused.
			var a *shoalv1.StoreAction
			if kind == "update" {
				a = update(withLabel(svc("s1", "web"), "v", "stale"), 3)
			} else {
				a = del(svc("s1", "web"), 3)
			}
			err := s.Apply(batch(a), 5)
			wantErr(t, err, errdefs.ErrConflict, "version 4, you read 3")
			if !strings.Contains(err.Error(), "retry") {
				t.Errorf("conflict error %q does not say what to do", err)
			}
			if !proto.Equal(dump(s), before) {
				t.Errorf("a refused %s changed the store", kind)
			}
			if s.Index() != 4 {
				t.Errorf("index after refused batch = %d; want 4", s.Index())
			}
			if len(events) != 0 {
				t.Errorf("a refused batch sent %d events", len(events))
			}

			// Version 0 skips the check.
			if kind == "update" {
				a = update(withLabel(svc("s1", "web"), "v", "blind"), 0)
			} else {
				a = del(svc("s1", "web"), 0)
			}
			mustApply(t, s, 6, a)
			got := getSvc(s, "s1")
			if kind == "update" && (got.GetSpec().GetLabels()["v"] != "blind" || got.GetMeta().GetVersion() != 6) {
				t.Errorf("blind update: %v", got)
			}
			if kind == "delete" && got != nil {
				t.Errorf("blind delete left %v", got)
			}
		})
	}
}

// TestLostUpdate plays two writers that both read version v and write: the
// second one must be refused, whatever it writes.
func TestLostUpdate(t *testing.T) {
	s := New()
	mustApply(t, s, 1, create(svc("s1", "web")))
	read := getSvc(s, "s1").GetMeta().GetVersion()
	mustApply(t, s, 2, update(withLabel(svc("s1", "web"), "writer", "A"), read))
	err := s.Apply(batch(update(withLabel(svc("s1", "web"), "writer", "B"), read)), 3)
	wantErr(t, err, errdefs.ErrConflict, "")
	if got := getSvc(s, "s1").GetSpec().GetLabels()["writer"]; got != "A" {
		t.Errorf("writer = %q; want A (B's update must not overwrite it)", got)
	}
}

func TestApplyErrors(t *testing.T) {
	s := New()
	mustApply(t, s, 1, create(svc("s1", "web")), create(node("n1", "host1")))
	before := dump(s)
	for _, tc := range []struct {
		name   string
		action *shoalv1.StoreAction
		cat    error
		msg    string
	}{
		{"create existing", create(svc("s1", "other")), errdefs.ErrAlreadyExists, "s1"},
		{"create existing node", create(node("n1", "host9")), errdefs.ErrAlreadyExists, "n1"},
		{"update missing", update(svc("nope", "x"), 0), errdefs.ErrNotFound, "nope"},
		{"delete missing", del(svc("nope", ""), 0), errdefs.ErrNotFound, "nope"},
		{"update missing with version", update(svc("nope", "x"), 1), errdefs.ErrNotFound, "nope"},
		{"no object", &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE}, errdefs.ErrInvalid, "without an object"},
		{"empty object", &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: &shoalv1.StoreObject{}}, errdefs.ErrInvalid, "without an object"},
		{"no id", create(svc("", "x")), errdefs.ErrInvalid, "without an id"},
		{"unspecified kind", &shoalv1.StoreAction{Object: Wrap(svc("s2", "x"))}, errdefs.ErrInvalid, "kind"},
		{"unspecified kind on existing", &shoalv1.StoreAction{Object: Wrap(svc("s1", "web"))}, errdefs.ErrInvalid, "kind"},
		{"unknown kind", &shoalv1.StoreAction{Kind: 42, Object: Wrap(svc("s2", "x"))}, errdefs.ErrInvalid, "kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Apply(batch(tc.action), 2)
			wantErr(t, err, tc.cat, tc.msg)
			if !proto.Equal(dump(s), before) || s.Index() != 1 {
				t.Error("a refused batch changed the store")
			}
		})
	}
}

func TestEmptyBatch(t *testing.T) {
	s := New()
	mustApply(t, s, 1, create(svc("s1", "web")))
	before := dump(s)
	mustApply(t, s, 2)
	if !proto.Equal(dump(s), before) {
		t.Error("an empty batch changed the objects")
	}
	if s.Index() != 2 {
		t.Errorf("index after empty batch = %d; want 2", s.Index())
	}
}

func TestBatchAllOrNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		actions []*shoalv1.StoreAction
		cat     error
		action  string // the failing action's position in the message
	}{
		{
			"bad last action",
			[]*shoalv1.StoreAction{create(svc("s2", "api")), update(withLabel(svc("s1", "web"), "v", "x"), 0), del(svc("missing", ""), 0)},
			errdefs.ErrNotFound, "action 2",
		},
		{
			"bad first action",
			[]*shoalv1.StoreAction{update(svc("s1", "web"), 99), create(svc("s2", "api"))},
			errdefs.ErrConflict, "action 0",
		},
		{
			"duplicate create in one batch",
			[]*shoalv1.StoreAction{create(svc("s2", "api")), create(svc("s2", "api"))},
			errdefs.ErrAlreadyExists, "action 1",
		},
		{
			"name taken earlier in the same batch",
			[]*shoalv1.StoreAction{create(svc("s2", "api")), create(svc("s3", "api"))},
			errdefs.ErrAlreadyExists, "action 1",
		},
		{
			"delete then update in one batch",
			[]*shoalv1.StoreAction{del(svc("s1", ""), 0), update(svc("s1", "web"), 0)},
			errdefs.ErrNotFound, "action 1",
		},
		{
			"stale version after write in the same batch",
			// The first action moves s1 to the batch's index, so the
			// second, which read version 1, is stale.
			[]*shoalv1.StoreAction{update(svc("s1", "web"), 1), update(svc("s1", "web"), 1)},
			errdefs.ErrConflict, "action 1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			mustApply(t, s, 1, create(withLabel(svc("s1", "web"), "v", "orig")))
			before := dump(s)
			events, cancel := s.Watch()
			defer cancel()
			err := s.Apply(batch(tc.actions...), 2)
			wantErr(t, err, tc.cat, tc.action)
			if !proto.Equal(dump(s), before) {
				t.Errorf("store changed by a refused batch:\n got %v\nwant %v", dump(s), before)
			}
			if s.Index() != 1 {
				t.Errorf("index = %d; want 1", s.Index())
			}
			if len(events) != 0 {
				t.Errorf("refused batch published %d events", len(events))
			}
		})
	}
}

// TestBatchSeesItsOwnWrites checks that later actions of a batch see the
// earlier ones: create then update, rename then reuse the old name.
func TestBatchSeesItsOwnWrites(t *testing.T) {
	s := New()
	mustApply(t, s, 1, create(svc("s1", "web")))
	mustApply(t, s, 2,
		create(svc("s2", "api")),
		update(withLabel(svc("s2", "api"), "v", "2"), 2),
		update(svc("s1", "web-old"), 1), // frees "web"
		create(svc("s3", "web")),
	)
	want := map[string]string{"s1": "web-old", "s2": "api", "s3": "web"}
	for id, name := range want {
		got := getSvc(s, id)
		if got.GetSpec().GetName() != name || got.GetMeta().GetVersion() != 2 {
			t.Errorf("%s = %v; want name %q at version 2", id, got, name)
		}
	}
	if getSvc(s, "s2").GetSpec().GetLabels()["v"] != "2" {
		t.Error("update after create in one batch was lost")
	}
}

func TestUniqueNames(t *testing.T) {
	type mk func(id, name string) Object
	for _, tc := range []struct {
		table string
		obj   mk
	}{
		{TableService, func(id, n string) Object { return svc(id, n) }},
		{TableNetwork, func(id, n string) Object { return &shoalv1.Network{Id: id, Spec: &shoalv1.NetworkSpec{Name: n}} }},
		{TableSecret, func(id, n string) Object { return &shoalv1.Secret{Id: id, Spec: &shoalv1.SecretSpec{Name: n}} }},
		{TableConfig, func(id, n string) Object { return &shoalv1.Config{Id: id, Spec: &shoalv1.ConfigSpec{Name: n}} }},
	} {
		t.Run(tc.table, func(t *testing.T) {
			s := New()
			mustApply(t, s, 1, create(tc.obj("a", "one")), create(tc.obj("b", "two")))

			err := s.Apply(batch(create(tc.obj("c", "one"))), 2)
			wantErr(t, err, errdefs.ErrAlreadyExists, `name "one" is already in use by a`)

			// Renaming to one's own name is no conflict.
			mustApply(t, s, 3, update(tc.obj("a", "one"), 1))
			// Renaming onto another's name is.
			err = s.Apply(batch(update(tc.obj("a", "two"), 3)), 4)
			wantErr(t, err, errdefs.ErrAlreadyExists, `"two"`)

			// A rename frees the old name; a delete frees its name.
			mustApply(t, s, 5, update(tc.obj("a", "three"), 3))
			mustApply(t, s, 6, create(tc.obj("c", "one")))
			mustApply(t, s, 7, del(tc.obj("b", ""), 1))
			mustApply(t, s, 8, create(tc.obj("d", "two")))

			// Names are exact: a prefix or extension of a name is another name.
			mustApply(t, s, 9, create(tc.obj("e", "tw")), create(tc.obj("f", "twoo")))

			// Empty names are not unique.
			mustApply(t, s, 10, create(tc.obj("g", "")), create(tc.obj("h", "")))
		})
	}

	t.Run("node hostnames may repeat", func(t *testing.T) {
		s := New()
		mustApply(t, s, 1, create(node("n1", "host")), create(node("n2", "host")))
		s.View(func(r ReadTx) {
			if got := ByName[*shoalv1.Node](r, TableNode, "host"); len(got) != 2 {
				t.Errorf("ByName(host) = %d nodes; want 2", len(got))
			}
		})
	})
	t.Run("names are per table", func(t *testing.T) {
		s := New()
		mustApply(t, s, 1,
			create(svc("s1", "shared")),
			create(&shoalv1.Network{Id: "n1", Spec: &shoalv1.NetworkSpec{Name: "shared"}}),
			create(&shoalv1.Secret{Id: "x1", Spec: &shoalv1.SecretSpec{Name: "shared"}}),
		)
	})
}

func TestFind(t *testing.T) {
	s := New()
	mustApply(t, s, 1,
		create(svc("abc123", "web")),
		create(svc("abd456", "api")),
		create(svc("xyz789", "abc")), // a name that is also a prefix of another's ID
		create(node("n1aaa", "host")),
		create(node("n2bbb", "host")),
	)
	find := func(ref string) (*shoalv1.Service, error) {
		var o *shoalv1.Service
		var err error
		s.View(func(r ReadTx) { o, err = Find[*shoalv1.Service](r, TableService, ref, "service") })
		return o, err
	}
	for _, tc := range []struct {
		ref    string
		wantID string
		cat    error
		msg    string
	}{
		{"abc123", "abc123", nil, ""},
		{"web", "abc123", nil, ""},
		{"api", "abd456", nil, ""},
		{"abd", "abd456", nil, ""}, // unique prefix
		{"xy", "xyz789", nil, ""},  // unique prefix
		{"abc", "xyz789", nil, ""}, // a name wins over an ID prefix
		{"ab", "", errdefs.ErrInvalid, "prefix of 2 IDs"},
		{"a", "", errdefs.ErrInvalid, "ambiguous"},
		{"nope", "", errdefs.ErrNotFound, `service "nope"`},
		{"abc1234", "", errdefs.ErrNotFound, ""},
		{"", "", errdefs.ErrInvalid, "an ID or name is required"},
		{"WEB", "", errdefs.ErrNotFound, ""}, // names are case sensitive
	} {
		t.Run(tc.ref, func(t *testing.T) {
			got, err := find(tc.ref)
			if tc.cat == nil {
				if err != nil || got.GetId() != tc.wantID {
					t.Fatalf("Find(%q) = %v, %v; want %s", tc.ref, got.GetId(), err, tc.wantID)
				}
				return
			}
			if got != nil {
				t.Errorf("Find(%q) returned %v with an error", tc.ref, got.GetId())
			}
			wantErr(t, err, tc.cat, tc.msg)
		})
	}

	t.Run("ambiguous name", func(t *testing.T) {
		var err error
		s.View(func(r ReadTx) { _, err = Find[*shoalv1.Node](r, TableNode, "host", "node") })
		wantErr(t, err, errdefs.ErrInvalid, "2 objects have that name")
	})
	t.Run("node by id", func(t *testing.T) {
		var n *shoalv1.Node
		var err error
		s.View(func(r ReadTx) { n, err = Find[*shoalv1.Node](r, TableNode, "n2", "node") })
		if err != nil || n.GetId() != "n2bbb" {
			t.Errorf("Find(n2) = %v, %v", n, err)
		}
	})
}

func TestListByIndexes(t *testing.T) {
	s := New()
	mustApply(t, s, 1,
		create(task("t1", "s1", "n1")),
		create(task("t2", "s1", "n2")),
		create(task("t3", "s2", "n1")),
		create(task("t4", "s2", "")), // unassigned
	)
	ids := func(ts []*shoalv1.Task) string {
		var out []string
		for _, t := range ts {
			out = append(out, t.GetId())
		}
		return strings.Join(out, ",")
	}
	s.View(func(r ReadTx) {
		for _, tc := range []struct{ index, value, want string }{
			{"service", "s1", "t1,t2"},
			{"service", "s2", "t3,t4"},
			{"service", "s", ""},
			{"node", "n1", "t1,t3"},
			{"node", "n2", "t2"},
			{"node", "n3", ""},
		} {
			if got := ids(ListBy[*shoalv1.Task](r, TableTask, tc.index, tc.value)); got != tc.want {
				t.Errorf("ListBy(%s=%s) = %q; want %q", tc.index, tc.value, got, tc.want)
			}
		}
	})
	// Moving a task moves it in the index.
	mustApply(t, s, 2, update(task("t4", "s2", "n2"), 1), del(task("t1", "", ""), 1))
	s.View(func(r ReadTx) {
		if got := ids(ListBy[*shoalv1.Task](r, TableTask, "node", "n2")); got != "t2,t4" {
			t.Errorf("ListBy(node=n2) after update = %q; want t2,t4", got)
		}
		if got := ids(ListBy[*shoalv1.Task](r, TableTask, "service", "s1")); got != "t2" {
			t.Errorf("ListBy(service=s1) after delete = %q; want t2", got)
		}
	})
}

// TestViewIsASnapshot checks that a view does not see batches committed
// while it is open.
func TestViewIsASnapshot(t *testing.T) {
	s := New()
	mustApply(t, s, 1, create(withLabel(svc("s1", "web"), "v", "1")))
	s.View(func(r ReadTx) {
		mustApply(t, s, 2, update(withLabel(svc("s1", "web"), "v", "2"), 0), create(svc("s2", "api")))
		if got := Get[*shoalv1.Service](r, TableService, "s1"); got.GetSpec().GetLabels()["v"] != "1" {
			t.Errorf("open view sees a later update: %v", got)
		}
		if got := Get[*shoalv1.Service](r, TableService, "s2"); got != nil {
			t.Errorf("open view sees a later create: %v", got)
		}
	})
	if getSvc(s, "s1").GetSpec().GetLabels()["v"] != "2" {
		t.Error("a new view does not see the update")
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if len(id) != 25 {
			t.Fatalf("NewID() = %q; want 25 characters", id)
		}
		for _, c := range id {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
				t.Fatalf("NewID() = %q holds %q", id, c)
			}
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

// TestConcurrentReaders runs readers alongside the writer; with -race it
// proves readers never see an object the writer is still changing.
func TestConcurrentReaders(t *testing.T) {
	s := New()
	mustApply(t, s, 1, create(svc("s1", "web")))
	events, cancel := s.Watch()
	defer cancel()

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.View(func(r ReadTx) {
					for _, o := range List[*shoalv1.Service](r, TableService) {
						_ = proto.Clone(o)
						if o.GetMeta().GetVersion() == 0 {
							t.Error("reader saw an object without a version")
						}
					}
				})
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range events {
			_, _ = proto.Marshal(ev)
		}
	}()
	for i := uint64(2); i < 200; i++ {
		mustApply(t, s, i, update(withLabel(svc("s1", "web"), "i", fmt.Sprint(i)), i-1), create(task(fmt.Sprintf("t%d", i), "s1", "")))
	}
	close(stop)
	cancel()
	wg.Wait()
}

func TestErrorsAreCategorized(t *testing.T) {
	// Every refusal must carry a category so controlapi can map it to a
	// gRPC code; a bare error would reach the user as Unknown.
	s := New()
	mustApply(t, s, 1, create(svc("s1", "web")))
	for _, b := range []*shoalv1.StoreBatch{
		batch(create(svc("s1", "x"))),
		batch(update(svc("s9", "x"), 0)),
		batch(update(svc("s1", "x"), 7)),
		batch(create(svc("s2", "web"))),
		batch(create(svc("", "x"))),
		batch(create(svc("s2", "x")), create(svc("s1", "y"))),
	} {
		err := s.Apply(b, 2)
		if err == nil {
			t.Errorf("Apply(%v) succeeded", b)
			continue
		}
		if errdefs.Category(err) == nil || errors.Unwrap(err) == nil {
			t.Errorf("Apply error %q has no category", err)
		}
	}
}

func svcPorts(id, name string, ports ...*shoalv1.PortConfig) *shoalv1.Service {
	s := svc(id, name)
	s.Spec.Endpoint = &shoalv1.EndpointSpec{Ports: ports}
	return s
}

func port(published uint32, proto shoalv1.PortProtocol, mode shoalv1.PublishMode) *shoalv1.PortConfig {
	return &shoalv1.PortConfig{TargetPort: 80, PublishedPort: published, Protocol: proto, PublishMode: mode}
}

func TestPublishedPorts(t *testing.T) {
	const (
		tcp     = shoalv1.PortProtocol_PORT_PROTOCOL_TCP
		udp     = shoalv1.PortProtocol_PORT_PROTOCOL_UDP
		ingress = shoalv1.PublishMode_PUBLISH_MODE_INGRESS
		host    = shoalv1.PublishMode_PUBLISH_MODE_HOST
	)
	for _, tc := range []struct {
		name    string
		first   *shoalv1.PortConfig
		second  *shoalv1.PortConfig
		refused bool
	}{
		{"same ingress port", port(8080, tcp, ingress), port(8080, tcp, ingress), true},
		{"ingress against host", port(8080, tcp, ingress), port(8080, tcp, host), true},
		{"host against ingress", port(8080, tcp, host), port(8080, tcp, ingress), true},
		{"host against host", port(8080, tcp, host), port(8080, tcp, host), false},
		{"other protocol", port(8080, tcp, ingress), port(8080, udp, ingress), false},
		{"other port", port(8080, tcp, ingress), port(8081, tcp, ingress), false},
		{"unpublished", port(0, tcp, ingress), port(0, tcp, ingress), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			mustApply(t, s, 1, create(svcPorts("s1", "web", tc.first)))
			before := dump(s)
			err := s.Apply(batch(create(svcPorts("s2", "api", port(9999, tcp, ingress), tc.second))), 2)
			if !tc.refused {
				if err != nil {
					t.Fatalf("Apply = %v; want accepted", err)
				}
				return
			}
			wantErr(t, err, errdefs.ErrInvalid, fmt.Sprintf(`service.publish[1]: port %d/tcp is already published by service "web"`, tc.second.GetPublishedPort()))
			if !proto.Equal(dump(s), before) {
				t.Error("refused service changed the store")
			}
		})
	}

	t.Run("lifecycle", func(t *testing.T) {
		s := New()
		mustApply(t, s, 1, create(svcPorts("s1", "web", port(8080, tcp, ingress))))
		// Updating the owner with its own port is fine.
		mustApply(t, s, 2, update(withLabel(svcPorts("s1", "web", port(8080, tcp, ingress)), "v", "2"), 1))
		// Two new services claiming the same port in one batch: the second
		// is refused and so is the whole batch.
		err := s.Apply(batch(
			create(svcPorts("s2", "a", port(7000, udp, ingress))),
			create(svcPorts("s3", "b", port(7000, udp, ingress))),
		), 3)
		wantErr(t, err, errdefs.ErrInvalid, `7000/udp is already published by service "a"`)
		if getSvc(s, "s2") != nil {
			t.Error("half of a refused batch was applied")
		}
		// Moving web off 8080 and giving 8080 to api in one batch works.
		mustApply(t, s, 4,
			update(svcPorts("s1", "web", port(9090, tcp, ingress)), 2),
			create(svcPorts("s2", "api", port(8080, tcp, ingress))),
		)
		// Deleting a service frees its port.
		mustApply(t, s, 5, del(svc("s1", ""), 0))
		mustApply(t, s, 6, create(svcPorts("s3", "other", port(9090, tcp, ingress))))
	})
}
