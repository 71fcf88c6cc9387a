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

// Read calls fn for each entry of the log at path, oldest first. With
// follow it then waits for new lines, across rotations.
func Read(path string, maxFiles int, follow *Follow, fn func(Entry) error) error {
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	files := Files(path, maxFiles)
	for _, p := range files[:len(files)-1] {
		if err := readFile(p, fn); err != nil {
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
			if err := emit(append(partial, line...), fn); err != nil {
				return err
			}
			partial = nil
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		partial = append(partial, line...)
		if follow == nil {
			return nil
		}
		// At the end of the file: a rotation moved it away, the
		// container ended, or more output will come.
		if rotated(f, path) {
			nf, err := os.Open(path)
			if err == nil {
				f.Close()
				f, br, partial = nf, bufio.NewReader(nf), nil
				continue
			}
		}
		select {
		case <-follow.Stop:
			return nil
		case <-follow.Done:
			// Drain what the writer flushed before it ended.
			rest, _ := io.ReadAll(br)
			for _, l := range splitLines(append(partial, rest...)) {
				if err := emit(l, fn); err != nil {
					return err
				}
			}
			return nil
		case <-time.After(poll):
		}
	}
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
