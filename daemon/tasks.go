package daemon

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/shoal-run/shoal/manager"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/image"
	"github.com/shoal-run/shoal/runtimeapi"
	"github.com/shoal-run/shoal/worker"
)

// tasks connects the worker agent to the managers: it follows the
// leader's assignment stream and sends task status reports in batches.
type tasks struct {
	d     *Daemon
	agent *worker.Agent

	mu      sync.Mutex
	pending map[string]*shoalv1.TaskStatus
	kick    chan struct{}
	overlay *overlay
}

func newTasks(ctx context.Context, d *Daemon, rt *runtimeapi.Server) *tasks {
	t := &tasks{d: d, pending: map[string]*shoalv1.TaskStatus{}, kick: make(chan struct{}, 1), overlay: &overlay{d: d}}
	exec := &worker.RuntimeExecutor{Runtime: rt.Containers, PullImage: func(ctx context.Context, ref string, progress func(image.Progress)) error {
		if _, err := rt.Images.Get(ref); err == nil {
			return nil
		}
		_, err := rt.Images.Pull(ctx, ref, progress)
		return err
	}, Net: t.overlay}
	t.agent = worker.NewAgent(ctx, exec, t.report, d.log)
	return t
}

func (t *tasks) report(taskID string, st *shoalv1.TaskStatus) {
	t.mu.Lock()
	t.pending[taskID] = st
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// sendLoop sends pending reports, batched, until ctx ends; a failed send
// keeps them for the next try.
func (t *tasks) sendLoop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		case <-retry.C:
		}
		// Let a burst of transitions share one message.
		time.Sleep(2 * time.Millisecond)
		t.mu.Lock()
		batch := t.pending
		t.pending = map[string]*shoalv1.TaskStatus{}
		t.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		req := &shoalv1.UpdateTaskStatusRequest{}
		for id, st := range batch {
			req.Updates = append(req.Updates, &shoalv1.TaskStatusUpdate{TaskId: id, Status: st})
		}
		t.d.mu.Lock()
		targets, id := t.d.targetsLocked(true), t.d.id
		t.d.mu.Unlock()
		var err error
		if id == nil {
			err = errNotInSwarm
		} else {
			err = t.d.callEach(ctx, targets, id, func(cctx context.Context, c *grpc.ClientConn) error {
				_, err := shoalv1.NewDispatcherServiceClient(c).UpdateTaskStatus(cctx, req)
				return err
			})
		}
		if err != nil {
			t.mu.Lock()
			for id, st := range batch {
				if _, newer := t.pending[id]; !newer {
					t.pending[id] = st
				}
			}
			t.mu.Unlock()
			retry.Reset(200 * time.Millisecond)
			t.d.log.Debug("task status report", zap.Error(err))
		}
	}
}

// sessionLoop follows the assignment stream of whichever manager leads.
func (t *tasks) sessionLoop(ctx context.Context) {
	for ctx.Err() == nil {
		t.d.mu.Lock()
		targets, id := t.d.targetsLocked(true), t.d.id
		t.d.mu.Unlock()
		if id == nil {
			return
		}
		tried := map[string]bool{}
		for i := 0; i < len(targets); i++ {
			addr := targets[i]
			if ctx.Err() != nil {
				return
			}
			tried[addr] = true
			conn, err := t.d.agentConn(addr, id)
			if err != nil {
				continue
			}
			leader, err := t.follow(ctx, addr, conn)
			if err != nil {
				t.d.log.Debug("assignment stream", zap.String("manager", addr), zap.Error(err))
			}
			// A follower names the leader: go there next (once a round).
			if leader != "" && !tried[leader] {
				targets = slices.Insert(targets, i+1, leader)
				tried[leader] = true
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// follow applies one manager's assignment stream until it ends. When the
// manager is a follower, leader is the address it redirects to.
func (t *tasks) follow(ctx context.Context, addr string, conn *grpc.ClientConn) (leader string, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := shoalv1.NewDispatcherServiceClient(conn).Assignments(sctx, &shoalv1.AssignmentsRequest{})
	if err != nil {
		return "", err
	}
	for first := true; ; first = false {
		msg, err := stream.Recv()
		if err == nil && first {
			t.d.log.Info("following the leader's assignments", zap.String("manager", addr), zap.Int("tasks", len(msg.GetTasks())))
		}
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			if hint := stream.Trailer().Get(manager.LeaderHintKey); len(hint) > 0 {
				leader = hint[0]
			}
			return leader, err
		}
		t.agent.Update(msg.GetFull(), msg.GetTasks(), msg.GetRemoved())
	}
}
