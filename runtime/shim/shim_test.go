package shim

import (
	"bufio"
	"strings"
	"testing"
)

// TestInitAnswers covers how the shim reads the init's setup pipe before
// and after its Go.
func TestInitAnswers(t *testing.T) {
	for _, tc := range []struct {
		pipe string
		want string // "" for ready
	}{
		{"ready\n", ""},
		{"", "the container init ended during setup"},
		{"error working directory /x: permission denied\n", "working directory /x: permission denied"},
		{"started\n", `the container init said "started" during setup, not "ready"`},
		{"set up failed\n", `the container init: malformed start message "set up failed": want one of`},
	} {
		err := initSetup(bufio.NewReader(strings.NewReader(tc.pipe)))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("initSetup(%q) = %v; want nil", tc.pipe, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("initSetup(%q) = %v; want %q", tc.pipe, err, tc.want)
		}
	}
	for _, tc := range []struct {
		pipe string
		want string // "" for started
	}{
		{"", ""},
		{"error exec /app: no such file or directory\n", "exec /app: no such file or directory"},
		{"ready\n", `the container init said "ready" after "go", not an error or nothing`},
		{"pid x\n", `the container init: malformed start message "pid x": the pid must be a number greater than 0`},
	} {
		if got := initExec(bufio.NewReader(strings.NewReader(tc.pipe))); got != tc.want {
			t.Errorf("initExec(%q) = %q; want %q", tc.pipe, got, tc.want)
		}
	}
}
