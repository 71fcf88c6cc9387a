// Command democluster is `make demo`: it starts a real Shoal cluster on
// this machine, shows it doing its job, injects a fault and shows the
// cluster heal, then cleans everything up.
//
// Today: three managers and one worker on loopback; a replicated service
// of real containers (the whoami image, served from a loopback registry)
// is created and scaled; the worker host is killed and the replicas heal;
// the Raft leader is killed with SIGKILL and a new leader answers writes.
// Network namespaces per host and the routing mesh join the demo as those
// issues land.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// tb lets the harness run outside `go test`: failures abort the demo and
// cleanups run at exit.
type tb struct {
	dirs     []string
	cleanups []func()
	failed   bool
}

type abort struct{ msg string }

func (t *tb) Helper()                   {}
func (t *tb) Logf(f string, a ...any)   { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (t *tb) Fatal(a ...any)            { t.failed = true; panic(abort{fmt.Sprint(a...)}) }
func (t *tb) Fatalf(f string, a ...any) { t.failed = true; panic(abort{fmt.Sprintf(f, a...)}) }
func (t *tb) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }
func (t *tb) Failed() bool              { return t.failed }
func (t *tb) TempDir() string {
	d, err := os.MkdirTemp("", "shoal-demo-")
	if err != nil {
		t.Fatal(err)
	}
	t.dirs = append(t.dirs, d)
	return d
}

func (t *tb) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	for _, d := range t.dirs {
		os.RemoveAll(d)
	}
}

func main() {
	wait := flag.Bool("wait", false, "keep the cluster running until Ctrl-C after the demo")
	flag.Parse()
	t := &tb{}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				if a, ok := r.(abort); ok {
					fmt.Fprintln(os.Stderr, "demo failed:", a.msg)
					code = 1
					return
				}
				panic(r)
			}
		}()
		run(ctx, t, *wait)
	}()
	fmt.Println("\n==> Cleaning up: stopping the daemons this demo started and removing their data.")
	t.close()
	os.Exit(code)
}

func step(format string, a ...any) { fmt.Printf("\n==> "+format+"\n", a...) }

func show(n *harness.Node, args ...string) string {
	fmt.Printf("$ shoal %s\n", strings.Join(args, " "))
	out, err := n.CLI(args...)
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "Error: "); i >= 0 {
			msg = msg[i:]
		}
		fmt.Println(msg)
		return ""
	}
	fmt.Print(out)
	return out
}

func run(ctx context.Context, t *tb, wait bool) {
	step("Building the whoami test image and serving it from a registry on loopback")
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	fmt.Printf("    %s (%d bytes)\n", img.Ref, img.Image.Size)

	step("Building shoal and starting 4 daemons on loopback (3 managers, 1 worker)")
	c := harness.StartCluster(t, 3, 1, "--log-level", "info")
	for _, n := range c.Nodes() {
		fmt.Printf("    %-9s pid %-7d api %s  data %s\n", n.Name, n.PID(), n.Addr, n.Dir)
	}
	m := c.Managers[0]

	step("The cluster: one leader, two reachable managers, one worker, joined with tokens over mutual TLS")
	harness.Eventually(t, 10*time.Second, func() error {
		out, err := m.CLI("node", "ls")
		if err != nil || strings.Count(out, "Ready") != 4 || !strings.Contains(out, "Leader") {
			return errors.New("cluster not ready")
		}
		return nil
	})
	show(m, "node", "ls")

	step("Creating a replicated service through one manager and scaling it through another")
	show(m, "service", "create", "--name", "web", "--replicas", "6", img.Ref)
	show(c.Managers[1], "service", "scale", "web=8")
	running := func(want int) error {
		out, err := m.CLI("service", "ls")
		if err != nil || !strings.Contains(out, fmt.Sprintf("%d/%d", want, want)) {
			return fmt.Errorf("not converged:\n%s", out)
		}
		return nil
	}
	harness.Eventually(t, 30*time.Second, func() error { return running(8) })
	fmt.Println("    (the scheduler spread the 8 tasks over the 4 nodes; each runs a real container)")
	show(c.Managers[2], "service", "ls")
	show(m, "service", "ps", "web")

	worker := c.Workers[0]
	step("Killing the worker host %s (daemon and its containers, SIGKILL)", worker.Name)
	killed := time.Now()
	worker.KillHost()
	harness.Eventually(t, 30*time.Second, func() error {
		ps, err := m.CLI("service", "ps", "--format", "json", "web")
		if err != nil {
			return err
		}
		if err := running(8); err != nil {
			return err
		}
		// Running again on the survivors: the replacements are newer
		// than the kill.
		if !strings.Contains(ps, "TASK_STATE_SHUTDOWN") {
			return errors.New("lost tasks not replaced yet")
		}
		return nil
	})
	fmt.Printf("    all 8 replicas running again %d ms after the host died (Swarm declares a node down after ~15 s)\n", time.Since(killed).Milliseconds())
	show(m, "service", "ps", "web")
	worker.Start()

	step("Bad input gets a clear error and changes nothing")
	show(m, "service", "create", "--name", "oops", "--replicas", "-2", "Not An Image")

	leader := c.Leader(10 * time.Second)
	var survivor *harness.Node
	for _, n := range c.Managers {
		if n != leader {
			survivor = n
			break
		}
	}
	step("Killing the Raft leader (%s, pid %d) with SIGKILL while writing through %s", leader.Name, leader.PID(), survivor.Name)
	client := survivor.Control()
	leader.Kill()
	killed = time.Now()
	var took time.Duration
	for {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := client.CreateService(cctx, &shoalv1.CreateServiceRequest{Spec: &shoalv1.ServiceSpec{
			Name: "after-failover",
			Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: img.Ref}},
			Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 0}},
		}})
		cancel()
		if err == nil || status.Code(err) == codes.AlreadyExists {
			took = time.Since(killed)
			break
		}
		if ctx.Err() != nil || time.Since(killed) > 30*time.Second {
			t.Fatalf("no write accepted after the leader died: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("    a new leader accepted a write %d ms after the old one died (Docker Swarm's default election takes ~10 s)\n", took.Milliseconds())
	harness.Eventually(t, 10*time.Second, func() error {
		out, err := survivor.CLI("node", "ls")
		if err != nil || !strings.Contains(out, "Unreachable") || !strings.Contains(out, "Leader") {
			return errors.New("not yet")
		}
		return nil
	})
	show(survivor, "node", "ls")

	step("Restarting the killed manager: it rejoins by itself and catches up")
	leader.Start()
	harness.Eventually(t, 20*time.Second, func() error {
		out, err := leader.CLI("service", "ls")
		if err != nil || !strings.Contains(out, "after-failover") {
			return errors.New("not caught up")
		}
		return nil
	})
	show(leader, "service", "ls")

	fmt.Println("\n==> To explore a cluster yourself, run the demo with -wait and try:")
	fmt.Printf("    shoal -H unix://%s node ls\n", survivor.Socket)
	fmt.Printf("    shoal -H unix://%s service inspect web\n", survivor.Socket)
	fmt.Printf("    shoal -H tcp://%s --cert-dir %s service ls\n", survivor.Addr, survivor.CertDir())
	if !wait {
		fmt.Println("    (make demo DEMO_ARGS=-wait keeps the cluster up until Ctrl-C)")
		return
	}
	fmt.Println("    Press Ctrl-C to stop and clean up.")
	<-ctx.Done()
}
