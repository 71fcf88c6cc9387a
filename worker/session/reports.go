package session

import (
	"context"
	"time"

	"go.uber.org/zap"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Report takes a task status change to send (it is a worker.Reporter); a
// newer status of the same task replaces one not sent yet.
func (s *Session) Report(taskID string, st *shoalv1.TaskStatus) {
	s.mu.Lock()
	s.pending[taskID] = st
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Spacing of the status reports.
const (
	reportBurst = 2 * time.Millisecond   // a burst of transitions shares one message
	reportRetry = 200 * time.Millisecond // after a failed send
)

// SendReports sends pending reports, batched, until ctx ends; a failed
// send keeps them for the next try.
func (s *Session) SendReports(ctx context.Context) {
	retry := s.clock.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-retry.Chan():
		}
		// Let a burst of transitions share one message.
		s.clock.Sleep(reportBurst)
		s.mu.Lock()
		batch := s.pending
		s.pending = map[string]*shoalv1.TaskStatus{}
		s.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		req := &shoalv1.UpdateTaskStatusRequest{}
		for id, st := range batch {
			req.Updates = append(req.Updates, &shoalv1.TaskStatusUpdate{TaskId: id, Status: st})
		}
		err := s.Dispatch(ctx, func(cctx context.Context, c shoalv1.DispatcherServiceClient) error {
			_, err := c.UpdateTaskStatus(cctx, req)
			return err
		})
		if err != nil {
			s.mu.Lock()
			for id, st := range batch {
				if _, newer := s.pending[id]; !newer {
					s.pending[id] = st
				}
			}
			s.mu.Unlock()
			retry.Reset(reportRetry)
			s.log.Debug("task status report", zap.Error(err))
		}
	}
}
