package dispatcher

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/metrics/timing"
	"github.com/shoal-run/shoal/manager/orchestrator"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// assigned reports whether a task belongs in a node's assignment set:
// everything on the node that is not being removed. Finished history
// stays in it until the task is deleted (trimmed, or its service
// removed), so the node keeps the exited container of a task that ended
// by itself, its logs and exit code, as docker's nodes do.
func assigned(t *shoalv1.Task, node string) bool {
	if t.GetNodeId() != node || t.GetStatus().GetState() < shoalv1.TaskState_TASK_STATE_ASSIGNED {
		return false
	}
	return t.GetDesiredState() != shoalv1.TaskState_TASK_STATE_REMOVE || !orchestrator.Terminal(t.GetStatus().GetState())
}

// Assignments streams a node's tasks, and the secrets and configs those
// that have not ended reference (and no others): the full sets, then
// changes. The node is the caller's certificate's.
func (d *Dispatcher) Assignments(_ *shoalv1.AssignmentsRequest, stream grpc.ServerStreamingServer[shoalv1.AssignmentsResponse]) error {
	caller, _ := auth.From(stream.Context())
	node := caller.NodeID
	ctx := stream.Context()
	timing.Sessions.Inc()
	defer timing.Sessions.Dec()
	for {
		events, cancel := d.cfg.Store.Watch()
		full := &shoalv1.AssignmentsResponse{Full: true}
		files := newNodeFiles(node)
		d.cfg.Store.View(func(r store.ReadTx) {
			for _, t := range store.ListBy[*shoalv1.Task](r, store.TableTask, "node", node) {
				if assigned(t, node) {
					full.Tasks = append(full.Tasks, t)
				}
				files.task(t, false)
			}
			files.sync(r, full)
		})
		if err := stream.Send(full); err != nil {
			cancel()
			return err
		}
		sent := map[string]bool{}
		for _, t := range full.GetTasks() {
			sent[t.GetId()] = true
		}
		err := d.followAssignments(ctx, stream, events, node, sent, files)
		cancel()
		if err != nil {
			return err
		}
		// The watch was dropped (a snapshot restore, or we fell behind):
		// start again from a full set.
	}
}

func (d *Dispatcher) followAssignments(ctx context.Context, stream grpc.ServerStreamingServer[shoalv1.AssignmentsResponse], events <-chan *shoalv1.StoreEvent, node string, sent map[string]bool, files *nodeFiles) error {
	leader := d.cfg.Clock.NewTicker(500 * time.Millisecond)
	defer leader.Stop()
	for {
		var msg shoalv1.AssignmentsResponse
		filesChanged := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-leader.Chan():
			if !d.cfg.Leading() {
				return fmt.Errorf("this manager lost leadership; reconnect to the new leader: %w", errdefs.ErrUnavailable)
			}
			continue
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			filesChanged = d.collect(&msg, ev, node, sent, files) || filesChanged
		}
		// Take whatever else is queued into the same message.
	more:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					break more
				}
				filesChanged = d.collect(&msg, ev, node, sent, files) || filesChanged
			default:
				break more
			}
		}
		if filesChanged {
			d.cfg.Store.View(func(r store.ReadTx) { files.sync(r, &msg) })
		}
		if len(msg.Tasks)+len(msg.Removed)+len(msg.Secrets)+len(msg.Configs)+len(msg.RemovedSecrets)+len(msg.RemovedConfigs) == 0 {
			continue
		}
		if err := stream.Send(&msg); err != nil {
			return err
		}
	}
}

// collect adds a store event's news for node to msg; it reports whether
// the secrets and configs the node needs may have changed (a task of the
// node changed, or a secret or config was written or deleted).
func (d *Dispatcher) collect(msg *shoalv1.AssignmentsResponse, ev *shoalv1.StoreEvent, node string, sent map[string]bool, files *nodeFiles) bool {
	deleted := ev.GetKind() == shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE
	if ev.GetObject().GetSecret() != nil || ev.GetObject().GetConfig() != nil {
		return true
	}
	t := ev.GetObject().GetTask()
	if t == nil {
		return false
	}
	keep := !deleted && assigned(t, node)
	switch {
	case keep:
		msg.Tasks = append(msg.Tasks, t)
		sent[t.GetId()] = true
	case sent[t.GetId()]:
		msg.Removed = append(msg.Removed, t.GetId())
		delete(sent, t.GetId())
	}
	return files.task(t, deleted)
}

// UpdateTaskStatus records what a worker reports about its tasks. States
// only move forward; a report for a task of another node is refused.
func (d *Dispatcher) UpdateTaskStatus(ctx context.Context, req *shoalv1.UpdateTaskStatusRequest) (*shoalv1.UpdateTaskStatusResponse, error) {
	caller, _ := auth.From(ctx)
	// A write to the same tasks in between (the orchestrator setting a
	// desired state) makes the batch conflict: read again and reapply,
	// so a report is never dropped. A worker's last report (shut down)
	// has no later change to carry it again.
	for attempt := 0; ; attempt++ {
		var b shoalv1.StoreBatch
		d.cfg.Store.View(func(r store.ReadTx) {
			for _, u := range req.GetUpdates() {
				t := store.Get[*shoalv1.Task](r, store.TableTask, u.GetTaskId())
				if t == nil || t.GetNodeId() != caller.NodeID || !advances(t.GetStatus(), u.GetStatus()) {
					continue
				}
				next := proto.Clone(t).(*shoalv1.Task)
				next.Status = u.GetStatus()
				b.Actions = append(b.Actions, &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE,
					Object: store.Wrap(next), ExpectedVersion: t.GetMeta().GetVersion()})
			}
		})
		if len(b.Actions) == 0 {
			return &shoalv1.UpdateTaskStatusResponse{}, nil
		}
		_, err := d.cfg.Raft.Propose(ctx, &b)
		if err == nil {
			return &shoalv1.UpdateTaskStatusResponse{}, nil
		}
		if !errdefs.Is(err, errdefs.ErrConflict) || attempt >= 10 || ctx.Err() != nil {
			return nil, err // the worker keeps the report and sends it again
		}
		d.cfg.Log.Debug("task status update raced; reapplying", zap.Error(err))
	}
}

// advances reports whether next is news over cur: a later state, or the
// same state with a different restart count, exit code, error or health
// state (a running task turning healthy or unhealthy).
func advances(cur, next *shoalv1.TaskStatus) bool {
	if next == nil {
		return false
	}
	if next.GetState() != cur.GetState() {
		return next.GetState() > cur.GetState() && !orchestrator.Terminal(cur.GetState())
	}
	return next.GetRestarts() != cur.GetRestarts() || next.GetExitCode() != cur.GetExitCode() || next.GetErr() != cur.GetErr() || next.GetMessage() != cur.GetMessage() ||
		next.GetHealth().GetState() != cur.GetHealth().GetState()
}
