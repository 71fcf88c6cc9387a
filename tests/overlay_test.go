package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
)

// overlayTask is a running task with its address on a network.
type overlayTask struct {
	id, host string
	pid      int
	addr     netip.Addr
}

// overlayTasks lists the running containers of svc with their addresses
// on network, from the task list and the hosts' processes.
func overlayTasks(t *testing.T, e *faults.Env, svc, network string) []overlayTask {
	t.Helper()
	var tasks []struct {
		ID       string `json:"id"`
		Networks []struct {
			NetworkName string `json:"network_name"`
			Addr        string `json:"addr"`
		} `json:"networks"`
	}
	if err := json.Unmarshal([]byte(e.C.Managers[0].MustCLI("service", "ps", "--format", "json", svc)), &tasks); err != nil {
		t.Fatal(err)
	}
	addr := map[string]netip.Addr{}
	for _, tk := range tasks {
		for _, n := range tk.Networks {
			if n.NetworkName == network {
				addr[tk.ID] = netip.MustParsePrefix(n.Addr).Addr()
			}
		}
	}
	var out []overlayTask
	for _, n := range e.C.Nodes() {
		for _, c := range n.RunningContainers() {
			if c.Service == svc {
				out = append(out, overlayTask{id: c.Task, host: n.Name, pid: c.Pid, addr: addr[c.Task]})
			}
		}
	}
	return out
}

// get asks http://to/ from inside from's network namespace and returns
// the Hostname line of the answer.
func get(from overlayTask, to netip.Addr) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return harness.DialIn(ctx, fmt.Sprintf("/proc/%d/ns/net", from.pid), network, addr)
		},
	}}
	resp, err := client.Get("http://" + to.String() + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if h, ok := strings.CutPrefix(l, "Hostname: "); ok {
			return h, nil
		}
	}
	return "", fmt.Errorf("no Hostname in %q", body)
}

// Containers of a service on an overlay network, one per host, reach each
// other at their task addresses across hosts (VXLAN between the hosts'
// namespaces), and a container of a service on another network cannot.
func TestOverlayAcrossHosts(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 2)
	m := e.C.Managers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("network", "create", "other")
	m.MustCLI("service", "create", "--name", "web", "--replicas", "3", "--network", "app", e.Image)
	m.MustCLI("service", "create", "--name", "stranger", "--replicas", "1", "--network", "other", e.Image)
	var web []overlayTask
	harness.Eventually(t, 60*time.Second, func() error {
		if err := e.Converged("web", 3); err != nil {
			return err
		}
		if err := e.Converged("stranger", 1); err != nil {
			return err
		}
		web = overlayTasks(t, e, "web", "app")
		hosts := map[string]bool{}
		for _, w := range web {
			hosts[w.host] = true
		}
		if len(hosts) != 3 {
			return fmt.Errorf("web runs on %v; want all 3 hosts", hosts)
		}
		return nil
	})
	for _, from := range web {
		for _, to := range web {
			if from.id == to.id {
				continue
			}
			harness.Eventually(t, 10*time.Second, func() error {
				_, err := get(from, to.addr)
				if err != nil {
					return fmt.Errorf("%s on %s → %s on %s: %v", from.addr, from.host, to.addr, to.host, err)
				}
				return nil
			})
		}
	}
	stranger := overlayTasks(t, e, "stranger", "other")
	if len(stranger) != 1 {
		t.Fatalf("stranger: %v", stranger)
	}
	if h, err := get(stranger[0], web[0].addr); err == nil {
		t.Errorf("a container on another network reached web at %s (answered by %s)", web[0].addr, h)
	}
}
