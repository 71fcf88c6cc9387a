package raftnode

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"

	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Encryption at rest, plain against sealed, side by side:
//
//	go test -run '^$' -bench 'AtRest' -benchmem -count 5 ./manager/raftnode
//
// StoreLogs writes batches of 64 entries, each a StoreBatch updating one
// task (about 240 bytes, as the dispatcher's status batches write), with
// raft-boltdb's fsync (sync) and without it (nosync: the cipher's share
// alone). GetLog reads one of 4096 entries. Snapshot persists and restores
// a store of 10,000 tasks through the file snapshot store.

func benchDEK(b *testing.B) *keys.Cipher {
	dek := make([]byte, keys.KeySize)
	_, _ = rand.Read(dek)
	c, err := keys.NewCipher(dek)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func benchTask(i int) *shoalv1.Task {
	return &shoalv1.Task{
		Id: fmt.Sprintf("task%06dxxxxxxxxxxxxxxxxx", i), ServiceId: "svc0000000000000000000000", Slot: uint64(i%100 + 1),
		NodeId: fmt.Sprintf("node%04dxxxxxxxxxxxxxxxxx", i%1000), ServiceName: "web",
		Spec: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "registry.example.com/team/web:1.25.3",
			Env: []string{"A=1", "B=2", "DATABASE_URL=postgres://db:5432/app", "LOG_LEVEL=info"}, Args: []string{"serve", "--port", "8080"}}},
		DesiredState: shoalv1.TaskState_TASK_STATE_RUNNING,
		Status:       &shoalv1.TaskStatus{State: shoalv1.TaskState_TASK_STATE_RUNNING, Message: "started"},
	}
}

func taskEntry(b *testing.B, i int) []byte {
	data, err := store.EncodeBatch(&shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
		Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(benchTask(i)),
	}}})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// logStores opens a raft-boltdb store in a fresh directory, plain or
// wrapped.
func logStore(b *testing.B, sealed, noSync bool) raft.LogStore {
	disk, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(b.TempDir(), "raft.db"), NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { disk.Close() })
	if !sealed {
		return disk
	}
	return &sealedLogs{disk: disk, cipher: benchDEK(b)}
}

var benchKinds = []struct {
	name   string
	sealed bool
}{{"plain", false}, {"sealed", true}}

func BenchmarkAtRestStoreLogs(b *testing.B) {
	const batch = 64
	for _, sync := range []struct {
		name   string
		noSync bool
	}{{"sync", false}, {"nosync", true}} {
		for _, k := range benchKinds {
			b.Run(sync.name+"/"+k.name, func(b *testing.B) {
				ls := logStore(b, k.sealed, sync.noSync)
				entries := make([]*raft.Log, batch)
				size := 0
				for i := range entries {
					entries[i] = &raft.Log{Type: raft.LogCommand, Term: 1, Data: taskEntry(b, i)}
					size += len(entries[i].Data)
				}
				b.SetBytes(int64(size))
				next := uint64(1)
				for b.Loop() {
					for _, e := range entries {
						e.Index = next
						next++
					}
					if err := ls.StoreLogs(entries); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkAtRestGetLog(b *testing.B) {
	const n = 4096
	for _, k := range benchKinds {
		b.Run(k.name, func(b *testing.B) {
			ls := logStore(b, k.sealed, true)
			entries := make([]*raft.Log, n)
			for i := range entries {
				entries[i] = &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Term: 1, Data: taskEntry(b, i)}
			}
			if err := ls.StoreLogs(entries); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(entries[0].Data)))
			var l raft.Log
			i := 0
			for b.Loop() {
				if err := ls.GetLog(uint64(i%n+1), &l); err != nil {
					b.Fatal(err)
				}
				i += 7
			}
		})
	}
}

func BenchmarkAtRestSnapshot(b *testing.B) {
	const tasks = 10000
	st := store.New()
	fsm := &store.FSM{Store: st, Log: zap.NewNop()}
	actions := make([]*shoalv1.StoreAction, 0, tasks)
	for i := range tasks {
		actions = append(actions, &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(benchTask(i))})
	}
	data, err := store.EncodeBatch(&shoalv1.StoreBatch{Actions: actions})
	if err != nil {
		b.Fatal(err)
	}
	if res := fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data}); res != nil {
		b.Fatal(res)
	}
	for _, k := range benchKinds {
		snapStore := func(b *testing.B) raft.SnapshotStore {
			disk, err := raft.NewFileSnapshotStoreWithLogger(b.TempDir(), 1, hclog.NewNullLogger())
			if err != nil {
				b.Fatal(err)
			}
			if !k.sealed {
				return disk
			}
			return &sealedSnapshots{disk: disk, cipher: benchDEK(b)}
		}
		persist := func(b *testing.B, ss raft.SnapshotStore) int64 {
			snap, err := fsm.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			sink, err := ss.Create(raft.SnapshotVersionMax, 1, 1, raft.Configuration{}, 1, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := snap.Persist(sink); err != nil {
				b.Fatal(err)
			}
			metas, err := ss.List()
			if err != nil || len(metas) == 0 {
				b.Fatal(err)
			}
			return metas[0].Size
		}
		b.Run("persist/"+k.name, func(b *testing.B) {
			ss := snapStore(b)
			b.SetBytes(persist(b, ss))
			for b.Loop() {
				persist(b, ss)
			}
		})
		b.Run("restore/"+k.name, func(b *testing.B) {
			ss := snapStore(b)
			b.SetBytes(persist(b, ss))
			metas, _ := ss.List()
			for b.Loop() {
				_, rc, err := ss.Open(metas[0].ID)
				if err != nil {
					b.Fatal(err)
				}
				into := &store.FSM{Store: store.New(), Log: zap.NewNop()}
				if err := into.Restore(rc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
