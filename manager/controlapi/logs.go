package controlapi

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// LogBroker is the leader's log broker (manager/logbroker).
type LogBroker interface {
	Subscribe(ctx context.Context, req *shoalv1.SubscribeLogsRequest, send func(*shoalv1.SubscribeLogsResponse) error) error
}

// SubscribeLogs streams the logs of the services and tasks the request
// names (by ID, name or ID prefix) from the nodes that run them.
func (s *Server) SubscribeLogs(req *shoalv1.SubscribeLogsRequest, stream grpc.ServerStreamingServer[shoalv1.SubscribeLogsResponse]) error {
	if s.Logs == nil {
		return fmt.Errorf("this manager relays no logs: %w", errdefs.ErrUnavailable)
	}
	if s.Leading != nil && !s.Leading() {
		if s.ForwardLogs == nil {
			return fmt.Errorf("this manager does not lead and cannot forward: %w", errdefs.ErrUnavailable)
		}
		return s.ForwardLogs(req, stream)
	}
	o := req.GetOptions()
	if o.GetSince() != nil && o.GetUntil() != nil && o.GetUntil().AsTime().Before(o.GetSince().AsTime()) {
		return fmt.Errorf("--until (%s) is before --since (%s): %w", o.GetUntil().AsTime(), o.GetSince().AsTime(), errdefs.ErrInvalid)
	}
	sel := &shoalv1.LogSelector{}
	var err error
	s.Store.View(func(r store.ReadTx) {
		for _, ref := range req.GetSelector().GetServiceIds() {
			var svc *shoalv1.Service
			if svc, err = store.Find[*shoalv1.Service](r, store.TableService, ref, "service"); err != nil {
				return
			}
			sel.ServiceIds = append(sel.ServiceIds, svc.GetId())
		}
		for _, ref := range req.GetSelector().GetTaskIds() {
			var t *shoalv1.Task
			if t, err = store.Find[*shoalv1.Task](r, store.TableTask, ref, "task"); err != nil {
				return
			}
			sel.TaskIds = append(sel.TaskIds, t.GetId())
		}
	})
	if err != nil {
		return err
	}
	if len(sel.GetServiceIds()) == 0 && len(sel.GetTaskIds()) == 0 {
		return fmt.Errorf("name a service or a task whose logs to read: %w", errdefs.ErrInvalid)
	}
	return s.Logs.Subscribe(stream.Context(), &shoalv1.SubscribeLogsRequest{Selector: sel, Options: o}, stream.Send)
}
