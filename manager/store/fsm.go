package store

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/manager/metrics/timing"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// EntryType is the first byte of every Raft log entry Shoal writes. A
// binary that meets a type it does not know skips the entry (and logs it),
// so newer leaders can add entry types without breaking older followers
// during an upgrade.
type EntryType byte

// Entry types.
const (
	EntryBatch EntryType = 1
)

// EncodeBatch makes a Raft log entry from a batch.
func EncodeBatch(b *shoalv1.StoreBatch) ([]byte, error) {
	data, err := proto.Marshal(b)
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(EntryBatch)}, data...), nil
}

// FSM adapts the store to raft.FSM. Apply is deterministic and touches
// only replicated state; its result (nil or an error) is what the proposer
// gets back from the Raft future.
type FSM struct {
	Store *Store
	Log   *zap.Logger
}

var _ raft.FSM = (*FSM)(nil)

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	defer func(begin time.Time) { timing.RaftApply.Observe(time.Since(begin).Seconds()) }(time.Now())
	switch EntryType(l.Data[0]) {
	case EntryBatch:
		var b shoalv1.StoreBatch
		if err := proto.Unmarshal(l.Data[1:], &b); err != nil {
			f.Store.advance(l.Index)
			return fmt.Errorf("decode log entry %d: %w", l.Index, err)
		}
		err := f.Store.Apply(&b, l.Index)
		if err != nil {
			f.Store.advance(l.Index)
		}
		return err
	default:
		f.Store.advance(l.Index)
		log := f.Log
		if log == nil {
			log = zap.NewNop()
		}
		log.Warn("skipping raft log entry of unknown type; is this binary older than the leader?",
			zap.Uint64("index", l.Index), zap.Uint8("type", l.Data[0]))
		return nil
	}
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	// raft calls Snapshot between Applies, so the index matches the copy.
	return &fsmSnapshot{snap: f.Store.Snapshot(), index: f.Store.Index()}, nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if len(data) < 9 || data[0] != snapshotVersion {
		return fmt.Errorf("snapshot has an unknown format")
	}
	index := binary.BigEndian.Uint64(data[1:9])
	var snap shoalv1.StoreSnapshot
	if err := proto.Unmarshal(data[9:], &snap); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	return f.Store.Restore(&snap, index)
}

const snapshotVersion = 1

type fsmSnapshot struct {
	snap  *shoalv1.StoreSnapshot
	index uint64
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	data, err := proto.Marshal(s.snap)
	if err != nil {
		sink.Cancel()
		return err
	}
	hdr := binary.BigEndian.AppendUint64([]byte{snapshotVersion}, s.index)
	if _, err := sink.Write(append(hdr, data...)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
