package cli

import (
	"os"
	"strings"
	"testing"
)

// The systemd unit in deploy/ starts the daemon with flags this binary
// accepts, and keeps containers running across daemon restarts.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile("../../../deploy/shoal.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	var exec string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			exec = v
		}
	}
	args := strings.Fields(exec)
	if len(args) < 2 || args[0] != "/usr/local/bin/shoal" || args[1] != "daemon" {
		t.Fatalf("ExecStart=%q; want /usr/local/bin/shoal daemon ...", exec)
	}
	cmd := newDaemonCmd(&globals{})
	if err := cmd.Flags().Parse(args[2:]); err != nil {
		t.Fatalf("the unit's daemon flags do not parse: %v", err)
	}
	if got := cmd.Flags().Lookup("socket").Value.String(); got != DefaultSocket {
		t.Errorf("the unit's socket %s is not the CLI's default %s", got, DefaultSocket)
	}
	for _, want := range []string{"KillMode=process", "Delegate=yes", "Restart=always"} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
}
