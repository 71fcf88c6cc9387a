package logs

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// write appends lines n0..n1-1 as entries one second apart from t0.
func write(t *testing.T, w *Writer, t0 time.Time, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		w.now = func() time.Time { return at }
		if err := w.Write("stdout", fmt.Appendf(nil, "line %d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
}

func lines(t *testing.T, path string, maxFiles int, o Options) []string {
	t.Helper()
	var got []string
	if err := ReadWith(path, maxFiles, nil, o, func(e Entry) error { got = append(got, e.Log); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func want(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("line %d\n", i))
	}
	return out
}

func TestReadWithOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "container.log")
	// Small files: the ten lines span several rotated files.
	w, err := NewWriter(path, 200, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	write(t, w, t0, 0, 10)
	if n := len(Files(path, 5)); n < 3 {
		t.Fatalf("the test wants several files; got %d", n)
	}
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"all", All, want(0, 10)},
		{"tail 3", Options{Tail: 3}, want(7, 10)},
		{"tail 0", Options{Tail: 0}, nil},
		{"tail beyond", Options{Tail: 50}, want(0, 10)},
		{"since", Options{Tail: -1, Since: t0.Add(6 * time.Second)}, want(6, 10)},
		{"until", Options{Tail: -1, Until: t0.Add(2 * time.Second)}, want(0, 3)},
		{"window and tail", Options{Tail: 2, Since: t0.Add(3 * time.Second), Until: t0.Add(7 * time.Second)}, want(6, 8)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lines(t, path, 5, tc.o); !slices.Equal(got, tc.want) {
				t.Errorf("got %q; want %q", got, tc.want)
			}
		})
	}
}

// A follower that falls behind while the files rotate reads the rotated
// files it can still find, in order, and is told when some are gone.
func TestFollowAcrossRotations(t *testing.T) {
	for _, tc := range []struct {
		name   string
		behind int // lines written while the reader is held
		lost   bool
	}{
		{"one rotation", 3, false},
		{"beyond the files kept", 30, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "container.log")
			w, err := NewWriter(path, 200, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
			write(t, w, t0, 0, 2)
			stop, done := make(chan struct{}), make(chan struct{})
			got := make(chan string, 1000)
			lost := make(chan time.Time, 10)
			ended := make(chan error)
			step := make(chan struct{})
			go func() {
				first := true
				ended <- ReadWith(path, 3, &Follow{Done: done, Stop: stop, Poll: time.Millisecond}, Options{Tail: -1, Lost: func(after time.Time) { lost <- after }},
					func(e Entry) error {
						got <- e.Log
						if first {
							first = false
							<-step // held on its first line
						}
						return nil
					})
			}()
			if l := <-got; l != "line 0\n" {
				t.Fatalf("first line %q", l)
			}
			write(t, w, t0, 2, 2+tc.behind)
			step <- struct{}{}
			// The last line written arrives; then the writer ends.
			var read []string
			for len(read) == 0 || read[len(read)-1] != fmt.Sprintf("line %d\n", 1+tc.behind) {
				select {
				case l := <-got:
					read = append(read, l)
				case <-time.After(10 * time.Second):
					t.Fatalf("the follower stopped after %q", read)
				}
			}
			close(done)
			if err := <-ended; err != nil {
				t.Fatal(err)
			}
			close(lost)
			var losses []time.Time
			for l := range lost {
				losses = append(losses, l)
			}
			if !tc.lost {
				if !slices.Equal(read, want(1, 2+tc.behind)) || len(losses) != 0 {
					t.Fatalf("read %q, losses %v; want every line and none lost", read, losses)
				}
				return
			}
			// What it read is in order: the rest of its own file, then a
			// gap, then the newest lines.
			if read[0] != "line 1\n" || len(losses) != 1 || !losses[0].Equal(t0.Add(time.Second)) {
				t.Fatalf("read %q, losses %v; want line 1, then one loss after line 1's time", read, losses)
			}
			last := 0
			for _, l := range read {
				var n int
				if _, err := fmt.Sscanf(l, "line %d\n", &n); err != nil || n <= last && last != 0 {
					t.Fatalf("out of order: %q", read)
				}
				last = n
			}
		})
	}
}
