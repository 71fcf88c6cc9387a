package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/atomicfile"
	"github.com/shoal-run/shoal/internal/errdefs"
)

// layerRecord is layers/<hex>/layer.json. A layer directory exists under
// its final name only once it is complete and verified.
type layerRecord struct {
	DiffID string `json:"diffID"`
	Link   string `json:"link"` // name of its symlink in l/
	Size   int64  `json:"size"` // bytes of regular files
}

// layerSource is where a layer's content comes from.
type layerSource struct {
	diffID string // from the image config: what the uncompressed stream must hash to
	digest string // the blob's digest, "" when the source has none (docker-archive)
	size   int64  // the blob's size, -1 when unknown
	label  string // how errors and progress name the layer
	status string // progress status while reading (downloading, extracting)
	origin string // who sent the bytes, for errors ("registry r:5000", "the archive")
	open   func() (io.ReadCloser, error)
	// classify turns an error of open or of reading into one for the user.
	classify func(error) error
}

// linkLengths are the short link lengths tried, shortest first.
var linkLengths = []int{12, 16, 24, 32, 64}

func (s *Store) hasLayer(diffID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.layers[diffID]
	return ok
}

// hold marks diffIDs as needed by an operation in progress, so that a
// concurrent prune does not remove them between being stored and being
// recorded in an image. The returned function releases them; it may be
// called more than once.
func (s *Store) hold(diffIDs []string) (release func()) {
	s.mu.Lock()
	for _, d := range diffIDs {
		s.inflight[d]++
	}
	s.mu.Unlock()
	done := false
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if done {
			return
		}
		done = true
		for _, d := range diffIDs {
			if s.inflight[d]--; s.inflight[d] <= 0 {
				delete(s.inflight, d)
			}
		}
	}
}

// ensureLayer stores src's layer unless it is stored already. Concurrent
// calls for one layer fetch it once: the others wait and reuse it. made
// says whether this call stored it.
func (s *Store) ensureLayer(ctx context.Context, src layerSource, rep *reporter, b *budget) (made bool, err error) {
	if s.hasLayer(src.diffID) {
		rep.report(Progress{Layer: src.label, Status: StatusExists})
		return false, nil
	}
	unlock, err := s.layerLocks.lock(ctx, src.diffID, func() {
		rep.report(Progress{Layer: src.label, Status: StatusWaiting})
	})
	if err != nil {
		return false, fmt.Errorf("layer %s: %w", src.label, err)
	}
	defer unlock()
	if s.hasLayer(src.diffID) {
		rep.report(Progress{Layer: src.label, Status: StatusExists})
		return false, nil
	}
	if err := s.storeLayer(ctx, src, rep, b); err != nil {
		return false, fmt.Errorf("layer %s: %w", src.label, err)
	}
	rep.report(Progress{Layer: src.label, Status: StatusDone})
	return true, nil
}

// storeLayer reads, verifies and unpacks src into a temporary directory,
// counting what it writes against b, and renames it into place only if
// every check passed.
func (s *Store) storeLayer(ctx context.Context, src layerSource, rep *reporter, b *budget) error {
	hex, ok := strings.CutPrefix(src.diffID, "sha256:")
	if !ok || len(hex) != 64 || !isHex(hex) {
		return fmt.Errorf("unsupported diffID %q: %w", src.diffID, errdefs.ErrInvalid)
	}
	tmp, err := os.MkdirTemp(s.path(layersDir), ".tmp-")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	diff := tmp + "/diff"
	if err := os.Mkdir(diff, 0o755); err != nil {
		return err
	}

	rc, err := src.open()
	if err != nil {
		return src.classify(err)
	}
	defer rc.Close()
	total := max(src.size, 0)
	rep.report(Progress{Layer: src.label, Status: src.status, Total: total})
	sr := newSourceReader(ctx, rc, src.size, rep.bytes(src.label, src.status, total))
	size, diffID, uerr := unpackStream(sr, diff, b)
	// Read to the end even after a failure: corrupt content should be
	// reported as such, not as whatever the unpacker tripped over.
	sr.drain()
	rep.report(Progress{Layer: src.label, Status: StatusVerifying, Current: sr.n, Total: total})

	badDigest := src.digest != "" && sr.digest() != src.digest
	complete := sr.eof || (src.size >= 0 && sr.n >= src.size)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case badDigest && complete:
		return fmt.Errorf("content has digest %s, not %s: %s sent corrupt data: %w", sr.digest(), src.digest, src.origin, errdefs.ErrInvalid)
	case sr.srcErr != nil:
		return src.classify(sr.srcErr)
	case src.size >= 0 && sr.n > src.size:
		return fmt.Errorf("content is larger than the %d bytes the manifest says: %s sent corrupt data: %w", src.size, src.origin, errdefs.ErrInvalid)
	case src.size >= 0 && sr.n < src.size:
		return fmt.Errorf("content is %d bytes, not the %d the manifest says: %s sent truncated data: %w", sr.n, src.size, src.origin, errdefs.ErrInvalid)
	case uerr != nil:
		return uerr
	case badDigest:
		return fmt.Errorf("content has digest %s, not %s: %w", sr.digest(), src.digest, errdefs.ErrInvalid)
	case diffID != src.diffID:
		return fmt.Errorf("uncompressed content has digest %s, but the image config says its diffID is %s: %w", diffID, src.diffID, errdefs.ErrInvalid)
	}

	// Verified: make it durable, then visible.
	s.mu.Lock()
	link := s.reserveLinkLocked(hex, src.diffID)
	s.mu.Unlock()
	registered := false
	defer func() {
		if !registered {
			s.mu.Lock()
			delete(s.links, link)
			s.mu.Unlock()
		}
	}()
	rec := &layerRecord{DiffID: src.diffID, Link: link, Size: size}
	recJSON, _ := json.Marshal(rec)
	if err := os.WriteFile(tmp+"/layer.json", recJSON, 0o600); err != nil {
		return err
	}
	if err := syncFS(tmp); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Rename(tmp, s.path(layersDir, hex)); err != nil {
		return fmt.Errorf("storing: %w", err)
	}
	done = true
	if err := os.Symlink("../"+layersDir+"/"+hex+"/diff", s.path(linksDir, link)); err != nil {
		s.removeLayerFiles(rec)
		return fmt.Errorf("storing: %w", err)
	}
	s.layers[src.diffID] = rec
	registered = true
	return nil
}

// unpackStream decompresses r, unpacks it into dir and returns the bytes
// written and the digest of the whole uncompressed stream (the diffID).
// What it unpacks, and the stream after the tar's end, count against b.
func unpackStream(r io.Reader, dir string, b *budget) (int64, string, error) {
	dr, closeFn, err := decompress(r)
	if err != nil {
		return 0, "", err
	}
	defer closeFn()
	hr := newHashReader(dr)
	size, err := unpack(hr, dir, b)
	if err == nil {
		// The diffID covers the whole stream, padding after the tar end
		// too; an endless tail of zeros stops at the limit.
		var tail io.Reader = hr
		if left := b.left(); left >= 0 {
			tail = io.LimitReader(hr, left+1)
		}
		n, cerr := io.Copy(io.Discard, tail)
		switch {
		case cerr != nil:
			err = corrupt("reading layer", cerr)
		default:
			err = b.take(n)
		}
	}
	return size, hr.digest(), err
}

// syncFS flushes the filesystem holding dir: the unpacked files are on
// disk before the rename makes the layer visible.
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// reserveLinkLocked picks the shortest free link name for a layer.
func (s *Store) reserveLinkLocked(hex, diffID string) string {
	for _, n := range linkLengths {
		c := hex[:n]
		if _, taken := s.links[c]; taken {
			continue
		}
		if _, err := os.Lstat(s.path(linksDir, c)); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		s.links[c] = diffID
		return c
	}
	s.links[hex] = diffID
	return hex
}

// collectLayers removes those of candidates that no image references and
// no operation in progress needs, returning the bytes freed.
func (s *Store) collectLayers(candidates []string) (int64, error) {
	var freed int64
	var errs []error
	seen := map[string]bool{}
	for _, d := range candidates {
		if seen[d] {
			continue
		}
		seen[d] = true
		unlock, _ := s.layerLocks.lock(context.Background(), d, nil)
		s.mu.Lock()
		rec, ok := s.layers[d]
		if !ok || s.inflight[d] > 0 || s.referencedLocked(d) {
			s.mu.Unlock()
			unlock()
			continue
		}
		delete(s.layers, d)
		err := s.removeLayerFiles(rec)
		s.mu.Unlock()
		unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("removing layer %s: %w", d, err))
			continue
		}
		freed += rec.Size
	}
	return freed, errors.Join(errs...)
}

func (s *Store) referencedLocked(diffID string) bool {
	for _, rec := range s.st.Images {
		for _, d := range rec.Layers {
			if d == diffID {
				return true
			}
		}
	}
	return false
}

// removeLayerFiles unlinks a layer's short link and removes its directory:
// first renamed out of the way, so a crash leaves only a .tmp- leftover.
// The caller holds s.mu.
func (s *Store) removeLayerFiles(rec *layerRecord) error {
	hex := strings.TrimPrefix(rec.DiffID, "sha256:")
	if err := os.Remove(s.path(linksDir, rec.Link)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if s.links[rec.Link] == rec.DiffID {
		delete(s.links, rec.Link)
	}
	trash := s.path(layersDir, ".tmp-del-"+hex)
	if err := os.Rename(s.path(layersDir, hex), trash); err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

// recoverLayers registers the complete layers on disk and removes the rest.
func (s *Store) recoverLayers() error {
	entries, err := os.ReadDir(s.path(layersDir))
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := s.path(layersDir, e.Name())
		rec, err := readLayerRecord(p, e.Name())
		if err != nil {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			continue
		}
		s.layers[rec.DiffID] = rec
	}
	// Links: keep those pointing where their layer says, recreate missing.
	entries, err = os.ReadDir(s.path(linksDir))
	if err != nil {
		return err
	}
	for _, e := range entries {
		target, _ := os.Readlink(s.path(linksDir, e.Name()))
		hex := strings.TrimSuffix(strings.TrimPrefix(target, "../"+layersDir+"/"), "/diff")
		if rec, ok := s.layers["sha256:"+hex]; ok && rec.Link == e.Name() {
			s.links[e.Name()] = rec.DiffID
			continue
		}
		os.Remove(s.path(linksDir, e.Name()))
	}
	for d, rec := range s.layers {
		if s.links[rec.Link] == d {
			continue
		}
		hex := strings.TrimPrefix(d, "sha256:")
		if _, taken := s.links[rec.Link]; taken || rec.Link == "" {
			rec.Link = s.reserveLinkLocked(hex, d)
			b, _ := json.Marshal(rec)
			if err := atomicfile.WriteFile(s.path(layersDir, hex, "layer.json"), b, 0o600); err != nil {
				return err
			}
		}
		if err := os.Symlink("../"+layersDir+"/"+hex+"/diff", s.path(linksDir, rec.Link)); err != nil {
			return err
		}
		s.links[rec.Link] = d
	}
	return nil
}

// readLayerRecord validates a layer directory named dirName.
func readLayerRecord(dir, dirName string) (*layerRecord, error) {
	if len(dirName) != 64 || !isHex(dirName) {
		return nil, errors.New("not a layer")
	}
	b, err := os.ReadFile(dir + "/layer.json")
	if err != nil {
		return nil, err
	}
	rec := &layerRecord{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, err
	}
	if rec.DiffID != "sha256:"+dirName || rec.Link == "" || strings.Contains(rec.Link, "/") {
		return nil, errors.New("layer record does not match its directory")
	}
	if fi, err := os.Lstat(dir + "/diff"); err != nil || !fi.IsDir() {
		return nil, errors.New("no diff directory")
	}
	return rec, nil
}
