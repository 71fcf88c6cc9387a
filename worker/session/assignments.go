package session

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Assignments takes the leader's assignment messages: the task agent
// (worker.Agent). UpdateFiles gets a message's secrets and configs
// before Update gets its tasks.
type Assignments interface {
	UpdateFiles(full bool, secrets []*shoalv1.Secret, configs []*shoalv1.Config, removedSecrets, removedConfigs []string)
	Update(full bool, tasks []*shoalv1.Task, removed []string)
}

// roundPause spaces the rounds over the managers when none streams.
const roundPause = 100 * time.Millisecond

// FollowAssignments follows the assignment stream of whichever manager
// leads into a, until ctx ends or the node is in no cluster.
func (s *Session) FollowAssignments(ctx context.Context, a Assignments) {
	s.followLeader(ctx, "assignment stream", func(ctx context.Context, addr string, conn *grpc.ClientConn) (string, error) {
		return s.follow(ctx, addr, conn, a)
	})
}

// followLeader runs stream against whichever manager leads until ctx
// ends or the node is in no cluster: it tries the node's targets in
// turn, going next to the leader a follower names.
func (s *Session) followLeader(ctx context.Context, what string, stream func(ctx context.Context, addr string, conn *grpc.ClientConn) (leader string, err error)) {
	for ctx.Err() == nil {
		targets, id := s.node.Targets()
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
			conn, err := s.conn(addr, id)
			if err != nil {
				continue
			}
			leader, err := stream(ctx, addr, conn)
			if err != nil {
				s.log.Debug(what, zap.String("manager", addr), zap.Error(err))
			}
			// A follower names the leader: go there next (once a round).
			if leader != "" && !tried[leader] {
				targets = slices.Insert(targets, i+1, leader)
				tried[leader] = true
			}
		}
		select {
		case <-ctx.Done():
		case <-s.clock.After(roundPause):
		}
	}
}

// follow applies one manager's assignment stream until it ends. When the
// manager is a follower, leader is the address it redirects to.
func (s *Session) follow(ctx context.Context, addr string, conn *grpc.ClientConn, a Assignments) (leader string, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := shoalv1.NewDispatcherServiceClient(conn).Assignments(sctx, &shoalv1.AssignmentsRequest{})
	if err != nil {
		return "", err
	}
	for first := true; ; first = false {
		msg, err := stream.Recv()
		if err == nil && first {
			s.log.Info("following the leader's assignments", zap.String("manager", addr), zap.Int("tasks", len(msg.GetTasks())))
		}
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			if hint := stream.Trailer().Get(shoalv1.LeaderHintKey); len(hint) > 0 {
				leader = hint[0]
			}
			return leader, err
		}
		// Never log msg: it may hold secret values.
		a.UpdateFiles(msg.GetFull(), msg.GetSecrets(), msg.GetConfigs(), msg.GetRemovedSecrets(), msg.GetRemovedConfigs())
		a.Update(msg.GetFull(), msg.GetTasks(), msg.GetRemoved())
	}
}
