// Package store is the replicated state of the cluster: go-memdb tables of
// clusters, nodes, services, tasks, networks, secrets and configs. Writes
// arrive only as StoreBatch entries committed by Raft (see fsm.go) and are
// applied all or nothing in one transaction; each written object's
// meta.version becomes the Raft index of its entry. Readers take a
// snapshot view; the leader's loops and `shoal events` follow committed
// changes through Watch.
package store

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/addrs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Table names.
const (
	TableCluster = "cluster"
	TableNode    = "node"
	TableService = "service"
	TableTask    = "task"
	TableNetwork = "network"
	TableSecret  = "secret"
	TableConfig  = "config"
)

// Object is anything kept in a table.
type Object interface {
	proto.Message
	GetId() string
	GetMeta() *shoalv1.Meta
}

// Store holds the tables.
type Store struct {
	mu    sync.Mutex // serializes writers
	db    atomic.Pointer[memdb.MemDB]
	watch *watchers
	index uint64 // last applied Raft index
}

// New returns an empty store.
func New() *Store {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic(err) // the schema is static
	}
	s := &Store{watch: newWatchers()}
	s.db.Store(db)
	return s
}

// NewID returns a random 25-character lower-case ID, like Docker's.
func NewID() string {
	max := new(big.Int).Exp(big.NewInt(36), big.NewInt(25), nil)
	n, err := rand.Int(rand.Reader, max)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("%025s", n.Text(36))
}

type nameIndexer struct{}

func (nameIndexer) FromObject(obj any) (bool, []byte, error) {
	n := nameOf(obj.(Object))
	if n == "" {
		return false, nil, nil
	}
	return true, []byte(n + "\x00"), nil
}

func (nameIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("name index takes one argument")
	}
	return []byte(args[0].(string) + "\x00"), nil
}

// portIndexer indexes services by each published port ("8080/tcp").
type portIndexer struct{}

func (portIndexer) FromObject(obj any) (bool, [][]byte, error) {
	var vals [][]byte
	for _, p := range obj.(*shoalv1.Service).GetSpec().GetEndpoint().GetPorts() {
		if p.GetPublishedPort() != 0 {
			vals = append(vals, []byte(PortString(p)+"\x00"))
		}
	}
	return len(vals) > 0, vals, nil
}

func (portIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("port index takes one argument")
	}
	return []byte(args[0].(string) + "\x00"), nil
}

func nameOf(o Object) string {
	switch v := o.(type) {
	case *shoalv1.Service:
		return v.GetSpec().GetName()
	case *shoalv1.Network:
		return v.GetSpec().GetName()
	case *shoalv1.Secret:
		return v.GetSpec().GetName()
	case *shoalv1.Config:
		return v.GetSpec().GetName()
	case *shoalv1.Node:
		return v.GetDescription().GetHostname()
	case *shoalv1.Cluster:
		return v.GetSpec().GetName()
	}
	return ""
}

// uniqueNames lists the tables whose names must be unique.
var uniqueNames = map[string]bool{TableService: true, TableNetwork: true, TableSecret: true, TableConfig: true}

func schema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, t := range []string{TableCluster, TableNode, TableService, TableTask, TableNetwork, TableSecret, TableConfig} {
		s.Tables[t] = &memdb.TableSchema{
			Name: t,
			Indexes: map[string]*memdb.IndexSchema{
				"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
				"name": {Name: "name", AllowMissing: true, Indexer: nameIndexer{}},
			},
		}
	}
	s.Tables[TableService].Indexes["port"] = &memdb.IndexSchema{Name: "port", AllowMissing: true, Indexer: portIndexer{}}
	s.Tables[TableService].Indexes["endpoint_port"] = &memdb.IndexSchema{Name: "endpoint_port", AllowMissing: true, Indexer: endpointPortIndexer{}}
	for _, t := range []string{TableService, TableTask, TableNode} {
		s.Tables[t].Indexes["addr"] = &memdb.IndexSchema{Name: "addr", AllowMissing: true, Indexer: addrIndexer{}}
	}
	s.Tables[TableTask].Indexes["service"] = &memdb.IndexSchema{Name: "service", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ServiceId"}}
	s.Tables[TableTask].Indexes["node"] = &memdb.IndexSchema{Name: "node", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "NodeId"}}
	return s
}

// split returns the table and the object held in o.
func split(o *shoalv1.StoreObject) (string, Object, error) {
	switch v := o.GetObject().(type) {
	case *shoalv1.StoreObject_Cluster:
		return TableCluster, v.Cluster, nil
	case *shoalv1.StoreObject_Node:
		return TableNode, v.Node, nil
	case *shoalv1.StoreObject_Service:
		return TableService, v.Service, nil
	case *shoalv1.StoreObject_Task:
		return TableTask, v.Task, nil
	case *shoalv1.StoreObject_Network:
		return TableNetwork, v.Network, nil
	case *shoalv1.StoreObject_Secret:
		return TableSecret, v.Secret, nil
	case *shoalv1.StoreObject_Config:
		return TableConfig, v.Config, nil
	}
	return "", nil, fmt.Errorf("store action without an object: %w", errdefs.ErrInvalid)
}

// Wrap puts an object into a StoreObject.
func Wrap(o Object) *shoalv1.StoreObject {
	switch v := o.(type) {
	case *shoalv1.Cluster:
		return &shoalv1.StoreObject{Object: &shoalv1.StoreObject_Cluster{Cluster: v}}
	case *shoalv1.Node:
		return &shoalv1.StoreObject{Object: &shoalv1.StoreObject_Node{Node: v}}
	case *shoalv1.Service:
		return &shoalv1.StoreObject{Object: &shoalv1.StoreObject_Service{Service: v}}
	case *shoalv1.Task:
		return &shoalv1.StoreObject{Object: &shoalv1.StoreObject_Task{Task: v}}
	case *shoalv1.Network:
		return &shoalv1.StoreObject{Object: &shoalv1.StoreObject_Network{Network: v}}
	case *shoalv1.Secret:
		return &shoalv1.StoreObject{Object: &shoalv1.StoreObject_Secret{Secret: v}}
	case *shoalv1.Config:
		return &shoalv1.StoreObject{Object: &shoalv1.StoreObject_Config{Config: v}}
	}
	panic(fmt.Sprintf("store: cannot wrap %T", o))
}

func kindName(t string) string { return t }

// Apply applies one batch at Raft index idx, all or nothing. It is
// deterministic: the same state and batch give the same result on every
// manager. A refused batch changes nothing and returns why.
func (s *Store) Apply(b *shoalv1.StoreBatch, idx uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := s.db.Load().Txn(true)
	defer tx.Abort()
	events := make([]*shoalv1.StoreEvent, 0, len(b.GetActions()))
	for i, a := range b.GetActions() {
		ev, err := applyAction(tx, a, idx)
		if err != nil {
			if len(b.GetActions()) > 1 {
				return fmt.Errorf("action %d: %w", i, err)
			}
			return err
		}
		events = append(events, ev)
	}
	tx.Commit()
	s.index = idx
	s.watch.publish(events)
	return nil
}

func applyAction(tx *memdb.Txn, a *shoalv1.StoreAction, idx uint64) (*shoalv1.StoreEvent, error) {
	table, obj, err := split(a.GetObject())
	if err != nil {
		return nil, err
	}
	id := obj.GetId()
	if id == "" {
		return nil, fmt.Errorf("%s without an id: %w", kindName(table), errdefs.ErrInvalid)
	}
	raw, err := tx.First(table, "id", id)
	if err != nil {
		return nil, err
	}
	var cur Object
	if raw != nil {
		cur = raw.(Object)
	}
	kind := a.GetKind()
	switch kind {
	case shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE:
		if cur != nil {
			return nil, fmt.Errorf("%s %s: %w", kindName(table), id, errdefs.ErrAlreadyExists)
		}
	case shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE:
		if cur == nil {
			return nil, fmt.Errorf("%s %s: %w", kindName(table), id, errdefs.ErrNotFound)
		}
		if v := a.GetExpectedVersion(); v != 0 && v != cur.GetMeta().GetVersion() {
			return nil, fmt.Errorf("%s %s was changed by someone else (version %d, you read %d); read it again and retry: %w",
				kindName(table), id, cur.GetMeta().GetVersion(), v, errdefs.ErrConflict)
		}
	default:
		return nil, fmt.Errorf("unknown store action kind %v: %w", kind, errdefs.ErrInvalid)
	}
	if kind == shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE {
		if err := tx.Delete(table, cur); err != nil {
			return nil, err
		}
		return &shoalv1.StoreEvent{Kind: kind, Object: Wrap(cur), Version: idx}, nil
	}
	if uniqueNames[table] {
		name := nameOf(obj)
		other, err := tx.First(table, "name", name)
		if err != nil {
			return nil, err
		}
		if other != nil && other.(Object).GetId() != id {
			return nil, fmt.Errorf("%s name %q is already in use by %s: %w", kindName(table), name, other.(Object).GetId(), errdefs.ErrAlreadyExists)
		}
	}
	if svc, ok := obj.(*shoalv1.Service); ok {
		if err := checkPublishedPorts(tx, svc); err != nil {
			return nil, err
		}
	}
	if nw, ok := obj.(*shoalv1.Network); ok {
		if err := checkNetwork(tx, nw); err != nil {
			return nil, err
		}
	}
	next := proto.Clone(obj).(Object)
	meta := next.GetMeta()
	if meta == nil {
		meta = &shoalv1.Meta{}
		setMeta(next, meta)
	}
	meta.Version = idx
	if cur != nil && cur.GetMeta().GetCreatedAt() != nil {
		meta.CreatedAt = cur.GetMeta().GetCreatedAt()
	}
	if meta.UpdatedAt == nil {
		meta.UpdatedAt = meta.CreatedAt
	}
	if err := tx.Insert(table, next); err != nil {
		return nil, err
	}
	return &shoalv1.StoreEvent{Kind: kind, Object: Wrap(next), Version: idx}, nil
}

func setMeta(o Object, m *shoalv1.Meta) {
	switch v := o.(type) {
	case *shoalv1.Cluster:
		v.Meta = m
	case *shoalv1.Node:
		v.Meta = m
	case *shoalv1.Service:
		v.Meta = m
	case *shoalv1.Task:
		v.Meta = m
	case *shoalv1.Network:
		v.Meta = m
	case *shoalv1.Secret:
		v.Meta = m
	case *shoalv1.Config:
		v.Meta = m
	}
}

// advance records that the entry at idx was applied even though it wrote
// nothing (a refused batch, a skipped entry type).
func (s *Store) advance(idx uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx > s.index {
		s.index = idx
	}
}

// Index is the Raft index of the last applied entry.
func (s *Store) Index() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

// ReadTx is a consistent read-only view.
type ReadTx struct{ tx *memdb.Txn }

// View runs fn on a consistent snapshot of the store.
func (s *Store) View(fn func(ReadTx)) {
	tx := s.db.Load().Txn(false)
	defer tx.Abort()
	fn(ReadTx{tx})
}

// Get returns the object with id in table, or nil. Callers must not
// modify it: clone before changing.
func Get[T Object](r ReadTx, table, id string) T {
	var zero T
	raw, err := r.tx.First(table, "id", id)
	if err != nil || raw == nil {
		return zero
	}
	return raw.(T)
}

// ByName returns the objects in table whose name is name.
func ByName[T Object](r ReadTx, table, name string) []T {
	return list[T](r, table, "name", name)
}

// List returns every object in table.
func List[T Object](r ReadTx, table string) []T {
	return list[T](r, table, "id")
}

// ListBy returns the objects of table whose index matches value.
func ListBy[T Object](r ReadTx, table, index, value string) []T {
	return list[T](r, table, index, value)
}

func list[T Object](r ReadTx, table, index string, args ...any) []T {
	it, err := r.tx.Get(table, index, args...)
	if err != nil {
		return nil
	}
	var out []T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(T))
	}
	return out
}

// Find resolves a reference the way the CLI takes it: a full ID, a name,
// or a unique ID prefix.
func Find[T Object](r ReadTx, table, ref, what string) (T, error) {
	var zero T
	if ref == "" {
		return zero, fmt.Errorf("%s: an ID or name is required: %w", what, errdefs.ErrInvalid)
	}
	if o := Get[T](r, table, ref); o.GetId() != "" {
		return o, nil
	}
	if named := ByName[T](r, table, ref); len(named) == 1 {
		return named[0], nil
	} else if len(named) > 1 {
		return zero, fmt.Errorf("%s %q is ambiguous: %d objects have that name; use an ID: %w", what, ref, len(named), errdefs.ErrInvalid)
	}
	var match []T
	for _, o := range List[T](r, table) {
		if strings.HasPrefix(o.GetId(), ref) {
			match = append(match, o)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return zero, fmt.Errorf("%s %q: %w", what, ref, errdefs.ErrNotFound)
	}
	return zero, fmt.Errorf("%s %q is ambiguous: it is a prefix of %d IDs; give more characters: %w", what, ref, len(match), errdefs.ErrInvalid)
}

// Snapshot copies the whole store.
func (s *Store) Snapshot() *shoalv1.StoreSnapshot {
	snap := &shoalv1.StoreSnapshot{}
	s.View(func(r ReadTx) {
		snap.Clusters = List[*shoalv1.Cluster](r, TableCluster)
		snap.Nodes = List[*shoalv1.Node](r, TableNode)
		snap.Services = List[*shoalv1.Service](r, TableService)
		snap.Tasks = List[*shoalv1.Task](r, TableTask)
		snap.Networks = List[*shoalv1.Network](r, TableNetwork)
		snap.Secrets = List[*shoalv1.Secret](r, TableSecret)
		snap.Configs = List[*shoalv1.Config](r, TableConfig)
	})
	return snap
}

// Restore replaces the whole store with snap, taken at Raft index idx.
func (s *Store) Restore(snap *shoalv1.StoreSnapshot, idx uint64) error {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return err
	}
	tx := db.Txn(true)
	insert := func(table string, o Object) error { return tx.Insert(table, o) }
	var objs []struct {
		t string
		o Object
	}
	add := func(t string, os ...Object) {
		for _, o := range os {
			objs = append(objs, struct {
				t string
				o Object
			}{t, o})
		}
	}
	for _, o := range snap.GetClusters() {
		add(TableCluster, o)
	}
	for _, o := range snap.GetNodes() {
		add(TableNode, o)
	}
	for _, o := range snap.GetServices() {
		add(TableService, o)
	}
	for _, o := range snap.GetTasks() {
		add(TableTask, o)
	}
	for _, o := range snap.GetNetworks() {
		add(TableNetwork, o)
	}
	for _, o := range snap.GetSecrets() {
		add(TableSecret, o)
	}
	for _, o := range snap.GetConfigs() {
		add(TableConfig, o)
	}
	for _, x := range objs {
		if err := insert(x.t, x.o); err != nil {
			tx.Abort()
			return fmt.Errorf("restore %s %s: %w", x.t, x.o.GetId(), err)
		}
	}
	tx.Commit()
	s.mu.Lock()
	s.db.Store(db)
	s.index = idx
	s.mu.Unlock()
	s.watch.reset()
	return nil
}

// checkPublishedPorts refuses a service that publishes a port another
// service already publishes, when either uses the ingress mode. It runs at
// apply time so concurrent writers cannot both win.
func checkPublishedPorts(tx *memdb.Txn, svc *shoalv1.Service) error {
	var problems []string
	for i, p := range svc.GetSpec().GetEndpoint().GetPorts() {
		if p.GetPublishedPort() == 0 {
			continue
		}
		it, err := tx.Get(TableService, "port", PortString(p))
		if err != nil {
			return err
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			other := raw.(*shoalv1.Service)
			if other.GetId() == svc.GetId() {
				continue
			}
			for _, op := range other.GetSpec().GetEndpoint().GetPorts() {
				if PortString(op) == PortString(p) &&
					(p.GetPublishMode() == shoalv1.PublishMode_PUBLISH_MODE_INGRESS || op.GetPublishMode() == shoalv1.PublishMode_PUBLISH_MODE_INGRESS) {
					problems = append(problems, fmt.Sprintf("service.publish[%d]: port %s is already published by service %q; choose another published port",
						i, PortString(p), other.GetSpec().GetName()))
					break
				}
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(problems, "; "), errdefs.ErrInvalid)
	}
	return nil
}

// checkNetwork refuses a network whose subnet overlaps another network's,
// whose VXLAN identifier another network has, or a second ingress
// network. It runs at apply time so concurrent creates cannot both win.
func checkNetwork(tx *memdb.Txn, nw *shoalv1.Network) error {
	var mine netip.Prefix
	if a := nw.GetAllocation().GetSubnet(); a != "" {
		var err error
		if mine, err = netip.ParsePrefix(a); err != nil {
			return fmt.Errorf("network %q: allocated subnet %q: %w", nw.GetSpec().GetName(), a, errdefs.ErrInvalid)
		}
	}
	it, err := tx.Get(TableNetwork, "id")
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		other := raw.(*shoalv1.Network)
		if other.GetId() == nw.GetId() {
			continue
		}
		if p, err := netip.ParsePrefix(other.GetAllocation().GetSubnet()); err == nil && mine.IsValid() && p.Overlaps(mine) {
			return fmt.Errorf("network.subnet: %s overlaps %s of network %q; choose another subnet: %w", mine, p, other.GetSpec().GetName(), errdefs.ErrConflict)
		}
		if v := nw.GetAllocation().GetVni(); v != 0 && other.GetAllocation().GetVni() == v {
			return fmt.Errorf("network %q: VXLAN identifier %d is taken by network %q: %w", nw.GetSpec().GetName(), nw.GetAllocation().GetVni(), other.GetSpec().GetName(), errdefs.ErrConflict)
		}
		if other.GetSpec().GetIngress() && nw.GetSpec().GetIngress() {
			return fmt.Errorf("network.ingress: network %q is already the ingress network; remove it first: %w", other.GetSpec().GetName(), errdefs.ErrConflict)
		}
	}
	return nil
}

// PortString renders a published port as 8080/tcp.
func PortString(p *shoalv1.PortConfig) string {
	return addrs.PortKey(p.GetPublishedPort(), p.GetProtocol())
}
