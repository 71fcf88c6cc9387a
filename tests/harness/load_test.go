package harness

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// A load client on a test host counts the answers of a server on another
// host and the failures of a port nothing listens on, each with its
// error; Stop returns the final totals, and NoFailures lists the
// failures.
func TestLoadOnHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	n := NewNet(t)
	server, client := n.AddHost("server"), n.AddHost("client")
	ln, err := server.Listen("tcp", server.IP+":8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Hostname: server")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	up, down := "http://"+server.IP+":8080/", "http://"+server.IP+":8081/"

	l := StartLoad(t, LoadSpec{Host: client, URLs: []string{up}, Every: 5 * time.Millisecond})
	l.WaitFlowing(20*time.Second, 10)
	if err := l.NoFailures(); err != nil {
		t.Fatal(err)
	}
	r := l.Stop()
	if a := r.Target(up).Answered["server"]; a == nil || a.N != r.OK() || r.OK() < 10 {
		t.Fatalf("answers %+v; want all of them by server", r.Target(up))
	}

	bad := StartLoad(t, LoadSpec{Host: client, URLs: []string{up, down}, Every: 5 * time.Millisecond})
	Eventually(t, 20*time.Second, func() error {
		r, err := bad.Report()
		if err != nil {
			return err
		}
		if r.Target(down).Failed < 3 || r.Target(up).OK < 3 {
			return fmt.Errorf("not yet 3 failures and 3 answers:\n%s", r.Summary())
		}
		return nil
	})
	err = bad.NoFailures()
	if err == nil || !strings.Contains(err.Error(), down) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("NoFailures with a closed port = %v; want the refused connections listed", err)
	}
	if got := bad.Failed(); got < 3 || bad.Stop().Target(up).Failed != 0 {
		t.Fatalf("Failed() = %d; want the closed port's failures only:\n%s", got, bad.Stop().Summary())
	}
}
