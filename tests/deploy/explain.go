package deploy

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shoal-run/shoal/tests/testimage"
)

// Explain says, for each failed request of the VIP load client r that got
// as far as a local address (and each dial of it that was slow), what the
// client container's conntrack holds for that address (the backend the VIP
// was DNATed to, the connection's state) and which container's whoami
// logged a request from it; then the load average. It is what tells a
// request lost on the way from one a backend took and did not answer.
func (e *Env) Explain(r testimage.LoadReport) string {
	var locals []string
	seen := map[string]bool{}
	add := func(a string) {
		if a != "" && !seen[a] {
			seen[a] = true
			locals = append(locals, a)
		}
	}
	for _, f := range r.Failures {
		if f.Trace != nil {
			add(f.Trace.Local)
		}
	}
	for _, d := range r.SlowDials {
		add(d.Local)
	}
	var b strings.Builder
	if len(locals) == 0 {
		fmt.Fprintf(&b, "  (no failed request or slow dial with a local address)\n")
	}
	pid := e.ClientPid()
	for _, l := range locals {
		ap, err := netip.ParseAddrPort(l)
		if err != nil {
			continue
		}
		out, err := exec.Command("nsenter", "--target", strconv.Itoa(pid), "--net", "--",
			"conntrack", "-L", "-p", "tcp", "--sport", strconv.Itoa(int(ap.Port()))).CombinedOutput()
		ct := strings.TrimSpace(string(out))
		if err != nil && ct == "" {
			ct = err.Error()
		}
		fmt.Fprintf(&b, "  %s: conntrack in the client: %s\n", l, strings.ReplaceAll(ct, "\n", "\n    "))
		for _, n := range e.C.Nodes() {
			logs, _ := filepath.Glob(filepath.Join(n.Dir, "data", "runtime", "containers", "*", "container.log*"))
			for _, lf := range logs {
				data, err := os.ReadFile(lf)
				if err != nil {
					continue
				}
				for _, line := range strings.Split(string(data), "\n") {
					if strings.Contains(line, l+" ") {
						fmt.Fprintf(&b, "    taken by %s on %s: %.200s\n", filepath.Base(filepath.Dir(lf))[:12], n.Name, line)
					}
				}
			}
		}
	}
	if r.Failed() > 0 || len(r.SlowDials) > 0 {
		// A dial that never got a local address: its SYN is in the
		// client's conntrack, unreplied, DNATed to the backend it was
		// sent to; the client's neighbour table says whether that
		// backend's address was resolved; the VXLAN device's entries on
		// the client's node whether it knew the backend.
		run := func(what string, args ...string) {
			out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
			txt := strings.TrimSpace(string(out))
			if err != nil && txt == "" {
				txt = err.Error()
			}
			fmt.Fprintf(&b, "  %s:\n    %s\n", what, strings.ReplaceAll(txt, "\n", "\n    "))
		}
		in := []string{"nsenter", "--target", strconv.Itoa(pid), "--net", "--"}
		run("client conntrack, unreplied", append(in, "conntrack", "-L", "-p", "tcp", "--status", "UNREPLIED")...)
		run("client neighbours", append(in, "ip", "neigh", "show")...)
		if h := e.MeshNode.Host; h != nil {
			run("client node's neighbours", "ip", "-n", h.NS, "neigh", "show")
			run("client node's forwarding entries", "bridge", "-n", h.NS, "fdb", "show")
		}
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "  load average now: %s", la)
	}
	return b.String()
}
