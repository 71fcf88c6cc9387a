// Package tests holds end-to-end tests: real `shoal daemon` processes
// started by the harness, real Raft, real mutual TLS, faults injected by
// killing processes.
package tests

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/shoal-run/shoal/internal/tlsutil"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
)

// unreachableImage names a registry on loopback where nothing listens: a
// task of it fails its pull at once, and nothing leaves the machine.
const unreachableImage = "127.0.0.1:1/whoami:1"

// spec is a service for control-plane tests; with 0 replicas no worker
// runs anything.
func spec(name string, replicas int64) *shoalv1.ServiceSpec {
	return &shoalv1.ServiceSpec{
		Name: name,
		Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: unreachableImage}},
		Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: replicas}},
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func listServices(t *testing.T, c shoalv1.ControlServiceClient) map[string]int {
	t.Helper()
	var resp *shoalv1.ListServicesResponse
	harness.Eventually(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var err error
		resp, err = c.ListServices(ctx, &shoalv1.ListServicesRequest{})
		return err
	})
	counts := map[string]int{}
	for _, s := range resp.GetServices() {
		counts[s.GetSpec().GetName()]++
	}
	return counts
}

func TestClusterFormsAndNodeLs(t *testing.T) {
	c := harness.StartCluster(t, 3, 1)
	m := c.Managers[1]
	harness.Eventually(t, 10*time.Second, func() error {
		out, err := m.CLI("node", "ls")
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 5 {
			return fmt.Errorf("want header and 4 nodes:\n%s", out)
		}
		if !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "MANAGER STATUS") {
			return fmt.Errorf("bad header %q", lines[0])
		}
		var leaders, reachable, ready int
		for _, l := range lines[1:] {
			leaders += strings.Count(l, "Leader")
			reachable += strings.Count(l, "Reachable")
			ready += strings.Count(l, "Ready")
		}
		if leaders != 1 || reachable != 2 || ready != 4 {
			return fmt.Errorf("want 1 leader, 2 reachable, 4 ready:\n%s", out)
		}
		if !strings.Contains(out, " * ") && !strings.Contains(out, " *\t") && !strings.Contains(out, "*") {
			return fmt.Errorf("the local node is not marked:\n%s", out)
		}
		return nil
	})
	// JSON and -q for scripts.
	js := m.MustCLI("node", "ls", "--format", "json")
	if !strings.HasPrefix(strings.TrimSpace(js), "[") || strings.Count(js, `"hostname"`) != 4 {
		t.Fatalf("node ls --format json:\n%s", js)
	}
	ids := strings.Fields(m.MustCLI("node", "ls", "-q"))
	if len(ids) != 4 {
		t.Fatalf("node ls -q = %v", ids)
	}
	// A worker's socket refuses cluster commands with a clear error.
	_, err := c.Workers[0].CLI("node", "ls")
	if err == nil || !strings.Contains(err.Error(), "not a swarm manager") {
		t.Fatalf("node ls on a worker: %v", err)
	}
}

// Kill -9 the leader while clients create services through the other
// managers: every create that returned success is present exactly once.
func TestLeaderKillLosesNoAcknowledgedWrite(t *testing.T) {
	c := harness.StartCluster(t, 3, 0)
	leader := c.Leader(10 * time.Second)
	var others []*harness.Node
	for _, m := range c.Managers {
		if m != leader {
			others = append(others, m)
		}
	}
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		client := others[w%2].Control()
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("svc-%d-%d", w, i)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					_, err := client.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec(name, 0)})
					cancel()
					if err == nil || status.Code(err) == codes.AlreadyExists {
						// AlreadyExists after an unknown outcome means
						// the earlier try was applied.
						mu.Lock()
						acked = append(acked, name)
						mu.Unlock()
						break
					}
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}(w)
	}
	waitAcked := func(n int) {
		harness.Eventually(t, 30*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(acked) < n {
				return fmt.Errorf("%d acknowledged creates, want %d", len(acked), n)
			}
			return nil
		})
	}
	waitAcked(40)
	leader.Kill()
	mu.Lock()
	atKill := len(acked)
	mu.Unlock()
	waitAcked(atKill + 40) // writes resume through the survivors
	close(stop)
	wg.Wait()

	counts := listServices(t, others[0].Control())
	for _, name := range acked {
		if counts[name] != 1 {
			t.Errorf("acknowledged service %s is present %d times", name, counts[name])
		}
	}
	// The killed leader comes back and catches up with the same history.
	leader.Start()
	harness.Eventually(t, 20*time.Second, func() error {
		got := listServices(t, leader.Control())
		for _, name := range acked {
			if got[name] != 1 {
				return fmt.Errorf("restarted manager: %s present %d times", name, got[name])
			}
		}
		return nil
	})
	t.Logf("%d acknowledged creates, all present once", len(acked))
}

// A 5-manager cluster keeps accepting writes after losing 2 managers and
// refuses them clearly, within seconds, after losing 3.
func TestFiveManagersQuorum(t *testing.T) {
	c := harness.StartCluster(t, 5, 0)
	c.Leader(15 * time.Second)
	survivor := c.Managers[4]
	c.Managers[0].Kill()
	c.Managers[1].Kill()
	client := survivor.Control()
	harness.Eventually(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := client.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec("after-two-lost", 0)})
		if status.Code(err) == codes.AlreadyExists {
			return nil
		}
		return err
	})
	c.Managers[2].Kill()
	// Without quorum a write fails with a clear error, never hangs: the
	// client's own deadline is far longer than the daemon may take.
	harness.Eventually(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		_, err := client.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec(fmt.Sprintf("no-quorum-%d", time.Now().UnixNano()), 0)})
		took := time.Since(start)
		if err == nil {
			return fmt.Errorf("a write was accepted without quorum")
		}
		if status.Code(err) != codes.Unavailable {
			return fmt.Errorf("want Unavailable, got %v", err)
		}
		msg := status.Convert(err).Message()
		if !strings.Contains(msg, "quorum") && !strings.Contains(msg, "no leader") {
			return fmt.Errorf("unclear error %q", msg)
		}
		if took > 15*time.Second {
			t.Fatalf("refusal took %s", took)
		}
		return nil
	})
	// The CLI says the same in words.
	_, err := survivor.CLI("service", "create", "--name", "cli-no-quorum", "--replicas", "0", unreachableImage)
	if err == nil || !(strings.Contains(err.Error(), "quorum") || strings.Contains(err.Error(), "no leader")) {
		t.Fatalf("CLI without quorum: %v", err)
	}
	// Bringing one back restores the quorum and the earlier write.
	c.Managers[2].Start()
	harness.Eventually(t, 30*time.Second, func() error {
		got := listServices(t, client)
		if got["after-two-lost"] != 1 {
			return fmt.Errorf("after-two-lost present %d times", got["after-two-lost"])
		}
		return nil
	})
}

// The whole cluster restarts from disk, with snapshots and log compaction
// in play.
func TestWholeClusterRestartFromSnapshotAndLog(t *testing.T) {
	c := harness.StartCluster(t, 3, 1, "--raft-snapshot-threshold", "16", "--raft-snapshot-interval", "200ms", "--raft-trailing-logs", "4")
	client := c.Leader(10 * time.Second).Control()
	want := map[string]uint64{}
	for i := 0; i < 60; i++ {
		name := fmt.Sprintf("persist-%d", i)
		resp, err := client.CreateService(ctxT(t, 5*time.Second), &shoalv1.CreateServiceRequest{Spec: spec(name, 0)})
		if err != nil {
			t.Fatal(err)
		}
		want[name] = resp.GetService().GetMeta().GetVersion()
	}
	// Snapshots were taken and the log compacted on every manager.
	for _, m := range c.Managers {
		harness.Eventually(t, 20*time.Second, func() error {
			snaps, _ := filepath.Glob(filepath.Join(m.Dir, "data", "raft", "snapshots", "snapshots", "*", "state.bin"))
			if len(snaps) == 0 {
				return fmt.Errorf("%s has no snapshot", m.Name)
			}
			return nil
		})
	}
	following := c.Workers[0].LogCount(faults.FollowingLog)
	for _, n := range c.Nodes() {
		n.Kill()
	}
	for _, n := range c.Nodes() {
		n.Start()
	}
	client = c.Leader(20 * time.Second).Control()
	var resp *shoalv1.ListServicesResponse
	harness.Eventually(t, 20*time.Second, func() error {
		var err error
		resp, err = client.ListServices(ctxT(t, 3*time.Second), &shoalv1.ListServicesRequest{})
		return err
	})
	if len(resp.GetServices()) != len(want) {
		t.Fatalf("after restart %d services, want %d", len(resp.GetServices()), len(want))
	}
	for _, s := range resp.GetServices() {
		if v := want[s.GetSpec().GetName()]; v != s.GetMeta().GetVersion() {
			t.Errorf("%s: version %d after restart, want %d", s.GetSpec().GetName(), s.GetMeta().GetVersion(), v)
		}
	}
	// The worker rejoined by itself: it follows the new leader's
	// assignments (the Ready restored from the snapshot alone proves
	// nothing), and every node is Ready.
	harness.Eventually(t, 20*time.Second, func() error {
		if w := c.Workers[0]; w.LogCount(faults.FollowingLog) <= following {
			return fmt.Errorf("%s does not follow the leader's assignments since the restart", w.Name)
		}
		nodes, err := client.ListNodes(ctxT(t, 3*time.Second), &shoalv1.ListNodesRequest{})
		if err != nil {
			return err
		}
		for _, n := range nodes.GetNodes() {
			if n.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY {
				return fmt.Errorf("node %s is %s", n.GetId(), n.GetStatus().GetState())
			}
		}
		return nil
	})
}

// --force-new-cluster brings a cluster back from one manager's data.
func TestForceNewCluster(t *testing.T) {
	c := harness.StartCluster(t, 3, 0)
	client := c.Leader(10 * time.Second).Control()
	for i := 0; i < 10; i++ {
		if _, err := client.CreateService(ctxT(t, 5*time.Second), &shoalv1.CreateServiceRequest{Spec: spec(fmt.Sprintf("keep-%d", i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range c.Managers {
		m.Kill()
	}
	survivor := c.Managers[2]
	survivor.Args = append(survivor.Args, "--force-new-cluster")
	survivor.Start()
	sc := survivor.Control()
	got := listServices(t, sc)
	for i := 0; i < 10; i++ {
		if got[fmt.Sprintf("keep-%d", i)] != 1 {
			t.Fatalf("after force-new-cluster: %v", got)
		}
	}
	harness.Eventually(t, 10*time.Second, func() error {
		_, err := sc.CreateService(ctxT(t, 3*time.Second), &shoalv1.CreateServiceRequest{Spec: spec("after-recovery", 0)})
		return err
	})
	// Restarted without the flag, it stays a one-manager cluster.
	survivor.Stop()
	survivor.Args = survivor.Args[:len(survivor.Args)-1]
	survivor.Start()
	got = listServices(t, survivor.Control())
	if got["after-recovery"] != 1 {
		t.Fatalf("after restart: %v", got)
	}
}

func nodeCount(t *testing.T, c shoalv1.ControlServiceClient) int {
	t.Helper()
	resp, err := c.ListNodes(ctxT(t, 5*time.Second), &shoalv1.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.GetNodes())
}

func TestJoinRefusals(t *testing.T) {
	c := harness.StartCluster(t, 1, 0)
	m := c.Managers[0]
	client := m.Control()
	other := harness.StartCluster(t, 1, 0).Managers[0]
	otherTok := strings.TrimSpace(other.MustCLI("swarm", "join-token", "-q", "worker"))
	oldTok := strings.TrimSpace(m.MustCLI("swarm", "join-token", "-q", "worker"))
	out := m.MustCLI("swarm", "join-token", "--rotate", "worker")
	if !strings.Contains(out, "rotated") {
		t.Fatalf("rotate output: %s", out)
	}
	newTok := strings.TrimSpace(m.MustCLI("swarm", "join-token", "-q", "worker"))
	if newTok == oldTok {
		t.Fatal("rotation did not change the token")
	}
	digest := strings.Split(newTok, "-")[2]
	wrongSecret := "SHOAL-1-" + digest + "-" + strings.Repeat("a", 25)

	joiner := harness.NewNode(t, "joiner")
	joiner.Start()
	before := nodeCount(t, client)
	for _, tc := range []struct {
		name, token, want string
	}{
		{"wrong secret", wrongSecret, "not valid"},
		{"rotated token", oldTok, "not valid"},
		{"other cluster's CA", otherTok, "digest does not match"},
		{"malformed", "SHOAL-1-nonsense", "invalid join token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := joiner.CLI("swarm", "join", "--token", tc.token, m.Addr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("join with %s: err = %v; want it to say %q", tc.name, err, tc.want)
			}
			if n := nodeCount(t, client); n != before {
				t.Fatalf("a refused join changed the node count: %d -> %d", before, n)
			}
			if _, err := os.Stat(filepath.Join(joiner.Dir, "data", "state.json")); err == nil {
				t.Fatal("a refused join left cluster state on the joiner")
			}
		})
	}
	// The fresh token works.
	joiner.MustCLI("swarm", "join", "--token", newTok, "--advertise-addr", joiner.Addr, m.Addr)
	if n := nodeCount(t, client); n != before+1 {
		t.Fatalf("node count after a good join: %d, want %d", n, before+1)
	}

	// A worker certificate cannot call the control API.
	_, err := shoalv1.NewControlServiceClient(joiner.DialWithCert(m.Addr)).ListServices(ctxT(t, 5*time.Second), &shoalv1.ListServicesRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("worker certificate on the control API: %v; want PermissionDenied", err)
	}
	// A TLS client without a certificate is refused too.
	caPEM, err := os.ReadFile(filepath.Join(m.CertDir(), "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := tlsutil.PoolOf(caPEM)
	anon, err := grpc.NewClient(m.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: tlsutil.ManagerServerName})))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	_, err = shoalv1.NewControlServiceClient(anon).ListServices(ctxT(t, 5*time.Second), &shoalv1.ListServicesRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("anonymous TLS client: %v; want Unauthenticated", err)
	}
	// A client whose certificate comes from another cluster's CA fails
	// the handshake.
	id, err := tlsutil.Files{Dir: other.CertDir()}.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg := id.ClientConfig()
	cfg.RootCAs = pool // trust m, present a foreign certificate
	fc, err := grpc.NewClient(m.Addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if _, err := shoalv1.NewControlServiceClient(fc).ListServices(ctxT(t, 5*time.Second), &shoalv1.ListServicesRequest{}); err == nil {
		t.Fatal("a certificate of another cluster was accepted")
	}
}

// Two clients update one service from the same version: one wins, the
// other gets a conflict; nothing is silently lost.
func TestConcurrentUpdatesConflict(t *testing.T) {
	c := harness.StartCluster(t, 3, 0)
	a, b := c.Managers[1].Control(), c.Managers[2].Control()
	created, err := a.CreateService(ctxT(t, 5*time.Second), &shoalv1.CreateServiceRequest{Spec: spec("contended", 0)})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 10; round++ {
		cur, err := a.GetService(ctxT(t, 5*time.Second), &shoalv1.GetServiceRequest{ServiceId: created.GetService().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		v := cur.GetService().GetMeta().GetVersion()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wants := []string{fmt.Sprint(100 + round), fmt.Sprint(200 + round)}
		for i, cl := range []shoalv1.ControlServiceClient{a, b} {
			wg.Add(1)
			go func(i int, cl shoalv1.ControlServiceClient) {
				defer wg.Done()
				sp := spec("contended", 0)
				sp.Labels = map[string]string{"writer": wants[i]}
				_, errs[i] = cl.UpdateService(ctxT(t, 5*time.Second), &shoalv1.UpdateServiceRequest{
					ServiceId: created.GetService().GetId(), Version: v, Spec: sp,
				})
			}(i, cl)
		}
		wg.Wait()
		var winners []int
		for i, err := range errs {
			switch {
			case err == nil:
				winners = append(winners, i)
			case status.Code(err) != codes.Aborted:
				t.Fatalf("round %d: loser got %v; want Aborted (conflict)", round, err)
			case !strings.Contains(status.Convert(err).Message(), "changed by someone else"):
				t.Fatalf("round %d: unclear conflict message %q", round, status.Convert(err).Message())
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d winners (%v); want exactly 1", round, len(winners), errs)
		}
		after, err := b.GetService(ctxT(t, 5*time.Second), &shoalv1.GetServiceRequest{ServiceId: "contended"})
		if err != nil {
			t.Fatal(err)
		}
		if got := after.GetService().GetSpec().GetLabels()["writer"]; got != wants[winners[0]] {
			t.Fatalf("round %d: stored label %q, winner wrote %q", round, got, wants[winners[0]])
		}
	}
}
