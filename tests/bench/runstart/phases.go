package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
)

// phaseNames are the steps of `shoal run --rm IMG` as the CLI takes them
// (cmd/shoal/cli/run.go), each timed on its own: a fresh connection, then
// CreateContainer, StartContainer, ContainerLogs with follow until the
// stream ends (the container has exited), WaitContainer, RemoveContainer.
var phaseNames = []string{"dial", "create", "start", "logs", "wait", "remove", "total"}

// measurePhases runs the CLI's sequence of calls n times over a new
// connection each time, like a CLI process, one run every period (0:
// each right after the previous one), and returns each phase's
// durations. The pace matters: a cgroup v1 attach soon after another one
// is cheap, one after an idle moment waits for an RCU grace period (see
// probeAttach), and back-to-back runs of this client come closer together
// than runs of the CLI, which also spends time starting and exiting.
func measurePhases(node *benchkit.RuntimeNode, ref string, n int, period time.Duration) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	next := time.Now()
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(next))
		next = time.Now().Add(period)
		d, err := onePhaseRun(node, ref)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i+1, err)
		}
		for j, name := range phaseNames {
			out[name] = append(out[name], d[j])
		}
	}
	return out, nil
}

func onePhaseRun(node *benchkit.RuntimeNode, ref string) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := make([]time.Duration, len(phaseNames))
	t0 := time.Now()
	mark := func(i int) {
		now := time.Now()
		d[i] = now.Sub(t0)
		t0 = now
	}
	begin := t0

	rc, conn, err := node.Runtime()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if s == connectivity.TransientFailure || !conn.WaitForStateChange(ctx, s) {
			return nil, fmt.Errorf("connect to %s: %s", node.Socket, s)
		}
	}
	mark(0)

	// What `shoal run --rm --entrypoint /bin/true IMG` sends.
	cfg := &shoalv1.ContainerConfig{
		Image: ref, Entrypoint: []string{"/bin/true"}, EntrypointSet: true,
		Network: "none", StopTimeout: durationpb.New(10 * time.Second),
	}
	created, err := rc.CreateContainer(ctx, &shoalv1.CreateContainerRequest{Config: cfg})
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	id := created.GetContainer().GetId()
	mark(1)
	if _, err := rc.StartContainer(ctx, &shoalv1.StartContainerRequest{Id: id}); err != nil {
		_, _ = rc.RemoveContainer(ctx, &shoalv1.RemoveContainerRequest{Id: id, Force: true})
		return nil, fmt.Errorf("start: %w", err)
	}
	mark(2)
	stream, err := rc.ContainerLogs(ctx, &shoalv1.ContainerLogsRequest{Id: id, Follow: true})
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("logs: %w", err)
		}
	}
	mark(3)
	w, err := rc.WaitContainer(ctx, &shoalv1.WaitContainerRequest{Id: id})
	if err != nil {
		return nil, fmt.Errorf("wait: %w", err)
	}
	mark(4)
	if _, err := rc.RemoveContainer(ctx, &shoalv1.RemoveContainerRequest{Id: id, Force: true}); err != nil {
		return nil, fmt.Errorf("remove: %w", err)
	}
	mark(5)
	d[6] = time.Since(begin)
	if c := w.GetContainer(); c.GetExitCode() != 0 || c.GetError() != "" {
		return nil, fmt.Errorf("container exited %d: %s", c.GetExitCode(), c.GetError())
	}
	return d, nil
}
