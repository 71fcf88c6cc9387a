package raftnode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/keys"
)

// Encryption at rest. The log store and the snapshot store raft is given
// wrap the ones on disk: raft (and RecoverCluster, HasExistingState,
// InstallSnapshot) sees plaintext, the disk only what the member's DEK
// sealed. Replication between members stays plaintext inside mutual TLS;
// each member seals with its own DEK.
//
//	raft ──plaintext──▶ sealedLogs ──keys.Cipher.Seal──▶ raft-boltdb (raft.db)
//	     ──plaintext──▶ sealedSnapshots ──chunked stream──▶ file snapshots
//
// A log entry's Data and Extensions are sealed together into its Data
// (Extensions stay empty on disk), authenticated with its index, term and
// type so that entries cannot be moved or swapped. The stable store
// (current term, vote) is not secret and stays plaintext; it also holds
// atRestKey: the format and the ID of the DEK the directory is sealed
// with, so an older plaintext directory, or a start with another DEK, is
// refused before raft reads anything.

// atRestKey is the stable store's key for the format marker.
var atRestKey = []byte("shoal-at-rest")

// sealedLogs is a raft.LogStore that seals what it stores.
type sealedLogs struct {
	disk   *raftboltdb.BoltStore
	cipher *keys.Cipher
}

func entryAD(l *raft.Log) []byte {
	var ad [8 + 8 + 1]byte
	binary.BigEndian.PutUint64(ad[0:8], l.Index)
	binary.BigEndian.PutUint64(ad[8:16], l.Term)
	ad[16] = byte(l.Type)
	return ad[:]
}

// sealEntry returns a copy of l with Data and Extensions sealed into Data.
func (s *sealedLogs) sealEntry(l *raft.Log) *raft.Log {
	plain := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(l.Data)+len(l.Extensions)), uint64(len(l.Data)))
	plain = append(plain, l.Data...)
	plain = append(plain, l.Extensions...)
	out := *l
	out.Data = s.cipher.Seal(make([]byte, 0, len(plain)+s.cipher.Overhead()), plain, entryAD(l))
	out.Extensions = nil
	return &out
}

// openEntry opens l's Data in place.
func (s *sealedLogs) openEntry(l *raft.Log) error {
	plain, err := s.cipher.Open(l.Data, entryAD(l))
	if err != nil {
		return fmt.Errorf("raft log entry %d: %w", l.Index, err)
	}
	n, k := binary.Uvarint(plain)
	if k <= 0 || n > uint64(len(plain)-k) {
		return fmt.Errorf("raft log entry %d: bad framing inside the sealed entry: %w", l.Index, errdefs.ErrFailedPrecond)
	}
	data, ext := plain[k:k+int(n)], plain[k+int(n):]
	l.Data, l.Extensions = nil, nil
	if len(data) > 0 {
		l.Data = data
	}
	if len(ext) > 0 {
		l.Extensions = ext
	}
	return nil
}

func (s *sealedLogs) FirstIndex() (uint64, error) { return s.disk.FirstIndex() }
func (s *sealedLogs) LastIndex() (uint64, error)  { return s.disk.LastIndex() }

func (s *sealedLogs) GetLog(index uint64, l *raft.Log) error {
	if err := s.disk.GetLog(index, l); err != nil {
		return err
	}
	return s.openEntry(l)
}

func (s *sealedLogs) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *sealedLogs) StoreLogs(logs []*raft.Log) error {
	out := make([]*raft.Log, len(logs))
	for i, l := range logs {
		out[i] = s.sealEntry(l)
	}
	return s.disk.StoreLogs(out)
}

func (s *sealedLogs) DeleteRange(lo, hi uint64) error { return s.disk.DeleteRange(lo, hi) }

// sealedSnapshots is a raft.SnapshotStore that seals snapshots as chunked
// streams (keys.Cipher.NewWriter) in the store on disk. The sizes it
// reports are the plaintext's: raft sends a snapshot to a follower with
// the size Open returns.
type sealedSnapshots struct {
	disk   raft.SnapshotStore
	cipher *keys.Cipher
}

func (s *sealedSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.disk.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	w, err := s.cipher.NewWriter(sink)
	if err != nil {
		_ = sink.Cancel()
		return nil, err
	}
	return &sealedSink{disk: sink, w: w}, nil
}

func (s *sealedSnapshots) List() ([]*raft.SnapshotMeta, error) {
	metas, err := s.disk.List()
	if err != nil {
		return nil, err
	}
	out := make([]*raft.SnapshotMeta, 0, len(metas))
	for _, m := range metas {
		c := *m
		// One too short to be sealed stays listed, of size 0: Open says
		// what is wrong with it.
		c.Size, _ = keys.PlainSize(m.Size)
		out = append(out, &c)
	}
	return out, nil
}

func (s *sealedSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.disk.Open(id)
	if err != nil {
		return nil, nil, fmt.Errorf("raft snapshot %s: %w", id, err)
	}
	r, err := s.cipher.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("raft snapshot %s: %w", id, err)
	}
	size, err := keys.PlainSize(meta.Size)
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("raft snapshot %s: %w", id, err)
	}
	c := *meta
	c.Size = size
	return &c, &sealedReader{r: r, c: rc, id: id}, nil
}

type sealedSink struct {
	disk raft.SnapshotSink
	w    io.WriteCloser
}

func (s *sealedSink) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s *sealedSink) ID() string                  { return s.disk.ID() }
func (s *sealedSink) Cancel() error               { return s.disk.Cancel() }

// Close seals the last chunk and closes the sink on disk; raft may call
// it again after the FSM's Persist did, as the file store allows.
func (s *sealedSink) Close() error {
	if err := s.w.Close(); err != nil {
		_ = s.disk.Cancel()
		return err
	}
	return s.disk.Close()
}

type sealedReader struct {
	r  io.Reader
	c  io.Closer
	id string
}

func (r *sealedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("raft snapshot %s: %w", r.id, err)
	}
	return n, err
}

func (r *sealedReader) Close() error { return r.c.Close() }

// atRestMarker is the format byte and the DEK's ID.
func atRestMarker(c *keys.Cipher) []byte {
	id := c.KeyID()
	return append([]byte{keys.FormatV1}, id[:]...)
}

// checkAtRest makes sure the Raft data in dir is sealed with c's DEK
// before raft reads it: a directory with state but no marker is an older,
// plaintext one; a marker of another DEK is a start with the wrong key;
// every log entry on disk must open. A new directory gets the marker.
func checkAtRest(dir string, disk *raftboltdb.BoltStore, snaps raft.SnapshotStore, c *keys.Cipher) error {
	got, err := disk.Get(atRestKey)
	switch {
	case errors.Is(err, raftboltdb.ErrKeyNotFound):
		has, err := raft.HasExistingState(disk, disk, snaps)
		if err != nil {
			return err
		}
		if has {
			return fmt.Errorf("the raft data in %s is not encrypted (written by a Shoal without encryption at rest) and is not read as it is: "+
				"move %s away, start the daemon and join this node to the swarm again as a manager, to get the cluster's state from the other managers "+
				"(a swarm whose only manager this is must be made again with `shoal swarm init`): %w",
				dir, dir, errdefs.ErrFailedPrecond)
		}
		return disk.Set(atRestKey, atRestMarker(c))
	case err != nil:
		return fmt.Errorf("read the raft data in %s: %w", dir, err)
	case len(got) < 1 || got[0] != keys.FormatV1:
		return fmt.Errorf("the raft data in %s is in an encryption format this Shoal does not know (version %d); run the Shoal that wrote it: %w", dir, got[0], errdefs.ErrFailedPrecond)
	case !bytes.Equal(got, atRestMarker(c)):
		return fmt.Errorf("the raft data in %s was encrypted with another data encryption key than this manager's key material holds "+
			"(the material in the certificates directory was replaced or belongs to another node); restore the certificates directory that goes with it: %w",
			dir, errdefs.ErrFailedPrecond)
	}
	logs := &sealedLogs{disk: disk, cipher: c}
	first, err := disk.FirstIndex()
	if err != nil {
		return err
	}
	last, err := disk.LastIndex()
	if err != nil {
		return err
	}
	if err := checkNewestSnapshot(dir, snaps); err != nil {
		return err
	}
	var l raft.Log
	for i := first; i <= last && last > 0; i++ {
		if err := logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			return keys.WithCategory(fmt.Errorf("%s: %w; the raft log in %s cannot be trusted: move the directory away and join this node to the swarm again", filepath.Join(dir, "raft.db"), err, dir), errdefs.ErrFailedPrecond)
		}
	}
	return nil
}

// checkNewestSnapshot reads the newest snapshot through (raft would
// otherwise fall back to an older one, or say only that none loaded).
func checkNewestSnapshot(dir string, snaps raft.SnapshotStore) error {
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return err
	}
	_, rc, err := snaps.Open(metas[0].ID)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err != nil {
		return keys.WithCategory(fmt.Errorf("%s: %w; the snapshot cannot be trusted: move the raft directory %s away and join this node to the swarm again", filepath.Join(dir, "snapshots"), err, dir), errdefs.ErrFailedPrecond)
	}
	return nil
}
