// Package logs stores a container's stdout and stderr as JSON lines, the
// format Docker's json-file driver uses ({"log":"…\n","stream":"stdout",
// "time":"…"}), in a size-capped file that rotates into a fixed number of
// older files, and reads them back, optionally following new lines.
package logs

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// Defaults, as Docker's json-file driver would be configured sensibly.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 3
	// maxLine splits longer lines so one line cannot hold memory hostage.
	maxLine = 16 << 10
)

// Entry is one line of output.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// Writer appends entries and rotates the file when it would pass maxSize:
// path becomes path.1, path.1 becomes path.2, and so on up to maxFiles-1.
type Writer struct {
	mu       sync.Mutex
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
	now      func() time.Time
}

// NewWriter opens path for appending.
func NewWriter(path string, maxSize int64, maxFiles int) (*Writer, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	w := &Writer{path: path, maxSize: maxSize, maxFiles: maxFiles, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	for i := w.maxFiles - 1; i >= 1; i-- {
		src := w.path
		if i > 1 {
			src = fmt.Sprintf("%s.%d", w.path, i-1)
		}
		if err := os.Rename(src, fmt.Sprintf("%s.%d", w.path, i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if w.maxFiles == 1 {
		if err := os.Truncate(w.path, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return w.open()
}

// Write appends one entry.
func (w *Writer) Write(stream string, line []byte) error {
	data, err := json.Marshal(Entry{Log: string(line), Stream: stream, Time: w.now().UTC()})
	if err != nil {
		return err
	}
	data = append(data, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.size > 0 && w.size+int64(len(data)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(data)
	w.size += int64(n)
	return err
}

// Copy writes each line read from r as an entry of stream until r ends.
func (w *Writer) Copy(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if werr := w.Write(stream, line); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed), errors.Is(err, syscall.EIO):
			return nil
		default:
			return err
		}
	}
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// Files lists path's files oldest first.
func Files(path string, maxFiles int) []string {
	var out []string
	for i := maxFiles - 1; i >= 1; i-- {
		p := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return append(out, path)
}

// Follow tells Read to keep reading new lines until done is closed (and
// everything written before is read), or until stop is closed.
type Follow struct {
	Done <-chan struct{}
	Stop <-chan struct{}
	Poll time.Duration
}

// Options choose which entries a read passes on.
type Options struct {
	// Tail passes only the last Tail entries written before the read
	// began, then (following) every new one; negative passes them all.
	Tail int
	// Since and Until bound the entries' times; zero is unbounded. A
	// follower stops at the first entry after Until.
	Since, Until time.Time
	// Lost is told when entries were rotated away before they were read
	// (a follower fell behind): after is the time of the last entry read
	// before them.
	Lost func(after time.Time)
}

// All is Options that pass every entry.
var All = Options{Tail: -1}

// errUntil ends a read at the first entry after Options.Until.
var errUntil = errors.New("past until")

// reader applies Options between the files and fn.
type reader struct {
	o       Options
	fn      func(Entry) error
	ring    []Entry // the backlog's last Tail entries, until caught up
	backlog bool
	last    time.Time
}

func (r *reader) entry(e Entry) error {
	r.last = e.Time
	if !r.o.Since.IsZero() && e.Time.Before(r.o.Since) {
		return nil
	}
	if !r.o.Until.IsZero() && e.Time.After(r.o.Until) {
		return errUntil
	}
	if !r.backlog || r.o.Tail < 0 {
		return r.fn(e)
	}
	if r.o.Tail == 0 {
		return nil
	}
	if len(r.ring) == r.o.Tail {
		copy(r.ring, r.ring[1:])
		r.ring = r.ring[:len(r.ring)-1]
	}
	r.ring = append(r.ring, e)
	return nil
}

// caughtUp ends the backlog: the tail goes out, then every entry.
func (r *reader) caughtUp() error {
	if !r.backlog {
		return nil
	}
	r.backlog = false
	ring := r.ring
	r.ring = nil
	for _, e := range ring {
		if err := r.fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Read calls fn for each entry of the log at path, oldest first. With
// follow it then waits for new lines, across rotations.
func Read(path string, maxFiles int, follow *Follow, fn func(Entry) error) error {
	return ReadWith(path, maxFiles, follow, All, fn)
}

// ReadWith is Read with Options.
func ReadWith(path string, maxFiles int, follow *Follow, o Options, fn func(Entry) error) error {
	r := &reader{o: o, fn: fn, backlog: true}
	err := r.read(path, maxFiles, follow)
	if errors.Is(err, errUntil) {
		err = nil
	}
	if err == nil {
		err = r.caughtUp()
	}
	return err
}

func (r *reader) read(path string, maxFiles int, follow *Follow) error {
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	files := Files(path, maxFiles)
	for _, p := range files[:len(files)-1] {
		if err := readFile(p, r.entry); err != nil {
			return err
		}
	}
	poll := 20 * time.Millisecond
	if follow != nil && follow.Poll > 0 {
		poll = follow.Poll
	}
	f, err := os.Open(path)
	for errors.Is(err, os.ErrNotExist) && follow != nil {
		// The shim creates the file when the container starts.
		select {
		case <-follow.Stop:
			return nil
		case <-follow.Done:
			f, err = os.Open(path)
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
		case <-time.After(poll):
			f, err = os.Open(path)
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	br := bufio.NewReader(f)
	var partial []byte
	for {
		line, err := br.ReadBytes('\n')
		if err == nil {
			if err := emit(append(partial, line...), r.entry); err != nil {
				return err
			}
			partial = nil
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		partial = append(partial, line...)
		if err := r.caughtUp(); err != nil {
			return err
		}
		if follow == nil {
			return nil
		}
		// At the end of the file: a rotation moved it away, the
		// container ended, or more output will come.
		if rotated(f, path) {
			newer, lost := newerFiles(f, path, maxFiles)
			if lost && r.o.Lost != nil {
				r.o.Lost(r.last)
			}
			for _, p := range newer {
				if err := readFile(p, r.entry); err != nil {
					return err
				}
			}
			nf, err := os.Open(path)
			if err == nil {
				f.Close()
				f, br, partial = nf, bufio.NewReader(nf), nil
				continue
			}
		} else if truncated(f) {
			// One file only: the writer emptied it in place.
			if r.o.Lost != nil {
				r.o.Lost(r.last)
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			br.Reset(f)
			partial = nil
			continue
		}
		select {
		case <-follow.Stop:
			return nil
		case <-follow.Done:
			// Drain what the writer flushed before it ended.
			rest, _ := io.ReadAll(br)
			for _, l := range splitLines(append(partial, rest...)) {
				if err := emit(l, r.entry); err != nil {
					return err
				}
			}
			return nil
		case <-time.After(poll):
		}
	}
}

// newerFiles lists the rotated files written after f (now one of them,
// or gone), oldest first; lost is set when f left the files altogether,
// so that some written after it may be gone too.
func newerFiles(f *os.File, path string, maxFiles int) (newer []string, lost bool) {
	st, err := f.Stat()
	if err != nil {
		return nil, true
	}
	for i := 1; i < maxFiles; i++ {
		p := fmt.Sprintf("%s.%d", path, i)
		if o, err := os.Stat(p); err == nil && os.SameFile(o, st) {
			for j := i - 1; j >= 1; j-- {
				newer = append(newer, fmt.Sprintf("%s.%d", path, j))
			}
			return newer, false
		}
	}
	for i := maxFiles - 1; i >= 1; i-- {
		p := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(p); err == nil {
			newer = append(newer, p)
		}
	}
	return newer, true
}

// truncated reports whether f is now shorter than where it was read to.
func truncated(f *os.File) bool {
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Size() < pos
}

func rotated(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && !os.SameFile(a, b)
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i < len(b) {
			i++
		}
		out = append(out, b[:i])
		b = b[i:]
	}
	return out
}

func emit(line []byte, fn func(Entry) error) error {
	if len(line) == 0 || (len(line) == 1 && line[0] == '\n') {
		return nil
	}
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		return nil // a torn line from a crash; skip it
	}
	return fn(e)
}

func readFile(path string, fn func(Entry) error) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := emit(sc.Bytes(), fn); err != nil {
			return err
		}
	}
	return sc.Err()
}
