package atomicfile_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoal-run/shoal/internal/atomicfile"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for i, tc := range []struct {
		data string
		mode fs.FileMode
	}{
		{"one", 0o600},
		{"two, longer", 0o644},
		{"3", 0o600},
	} {
		if err := atomicfile.WriteFile(p, []byte(tc.data), tc.mode); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != tc.data {
			t.Errorf("write %d: file holds %q (err %v); want %q", i, got, err, tc.data)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != tc.mode {
			t.Errorf("write %d: mode %v; want %v", i, st.Mode().Perm(), tc.mode)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries; want 1 (no temporary files left)", len(entries))
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Error("WriteFile into a missing dir succeeded")
	}
}
