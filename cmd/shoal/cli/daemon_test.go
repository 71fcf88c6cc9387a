package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// A bad --max-image-size is refused before the daemon starts anything.
func TestDaemonMaxImageSizeFlag(t *testing.T) {
	for _, tt := range []struct{ value, want string }{
		{"lots", `--max-image-size: "lots" is not a size (e.g. 512m, 1g)`},
		{"-1g", `--max-image-size: "-1g" is not a size`},
		{"", "--max-image-size: empty size"},
	} {
		dir := t.TempDir()
		var out bytes.Buffer
		err := Run(context.Background(), []string{"daemon", "--data-dir", dir, "--socket", dir + "/s.sock", "--max-image-size", tt.value}, &out, &out)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("daemon --max-image-size %q: %v; want an error containing %q", tt.value, err, tt.want)
		}
		if es, err := os.ReadDir(dir); err != nil || len(es) != 0 {
			t.Errorf("daemon --max-image-size %q wrote %v (%v)", tt.value, es, err)
		}
	}
}
