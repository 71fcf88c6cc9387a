package harness

import (
	"net"
	"os/exec"
	"testing"
	"time"
)

// A daemon that exits by itself (crashes) is not running, and can be
// started again; one that runs is.
func TestNodeRunningFollowsTheProcess(t *testing.T) {
	t.Setenv("SHOAL_BIN", "/bin/true") // never run: Exec below replaces it
	n := NewNode(t, "crasher")
	// The socket answers for the fake daemon, so Start returns at once.
	ln, err := net.Listen("unix", n.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	exit := make(chan struct{})
	n.Exec = func(string, ...string) *exec.Cmd {
		cmd := exec.Command("cat") // runs until its stdin closes
		stdin, _ := cmd.StdinPipe()
		go func() { <-exit; stdin.Close() }()
		return cmd
	}
	n.Start()
	if !n.Running() || n.PID() == 0 {
		t.Fatalf("a started daemon: Running() = %v, PID() = %d; want true and its PID", n.Running(), n.PID())
	}
	close(exit) // the daemon "crashes"
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the fake daemon did not exit")
	}
	if n.Running() {
		t.Fatal("a daemon that exited by itself is still reported running")
	}
	if pid := n.PID(); pid != 0 {
		t.Fatalf("PID() = %d for a daemon that exited; want 0", pid)
	}
	exit = make(chan struct{})
	if err := n.StartErr(); err != nil {
		t.Fatalf("starting a crashed daemon again: %v", err)
	}
	if !n.Running() {
		t.Fatal("the restarted daemon is not running")
	}
	close(exit)
}
