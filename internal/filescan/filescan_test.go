package filescan

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestScan(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "xx-needle-one-xx")
	write("sub/b", "needle-two and needle-one")
	write("sub/c", "nothing here")
	if err := os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		needles []string
		want    []Hit
	}{
		{"none", []string{"absent"}, nil},
		{"one", []string{"needle-two"}, []Hit{{filepath.Join(dir, "sub/b"), 0}}},
		{"both", []string{"needle-one", "needle-two"}, []Hit{{filepath.Join(dir, "a"), 0}, {filepath.Join(dir, "sub/b"), 0}, {filepath.Join(dir, "sub/b"), 1}}},
	} {
		var needles [][]byte
		for _, n := range tc.needles {
			needles = append(needles, []byte(n))
		}
		hits, read, err := Scan(needles, dir)
		if err != nil || read != 3 || !slices.Equal(hits, tc.want) {
			t.Errorf("%s: Scan = %v, %d read, %v; want %v, 3 read (the link is not followed)", tc.name, hits, read, err, tc.want)
		}
	}
	if _, read, err := Scan(nil, filepath.Join(dir, "missing")); err != nil || read != 0 {
		t.Errorf("Scan(missing dir) = %d read, %v; want 0 and no error", read, err)
	}
}
