package session

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// LogSubscriptions takes the leader's log subscriptions: the node's log
// publisher (worker.LogPublisher). Start begins reading for sub,
// publishing through open; Stop ends the reading for a subscription;
// Reset ends every reading (the stream to the leader ended).
type LogSubscriptions interface {
	Start(sub *shoalv1.LogSubscription, open func(ctx context.Context) (PublishStream, error))
	Stop(id string)
	Reset()
}

// PublishStream is a publish stream to the manager a subscription came
// from.
type PublishStream = grpc.ClientStreamingClient[shoalv1.PublishLogsRequest, shoalv1.PublishLogsResponse]

// FollowLogSubscriptions follows the leader's log subscriptions for this
// node into l, until ctx ends or the node is in no cluster.
func (s *Session) FollowLogSubscriptions(ctx context.Context, l LogSubscriptions) {
	s.followLeader(ctx, "log subscriptions", func(ctx context.Context, addr string, conn *grpc.ClientConn) (string, error) {
		defer l.Reset()
		client := shoalv1.NewDispatcherServiceClient(conn)
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := client.ListenLogSubscriptions(sctx, &shoalv1.ListenLogSubscriptionsRequest{})
		if err != nil {
			return "", err
		}
		open := func(ctx context.Context) (PublishStream, error) {
			return client.PublishLogs(ctx)
		}
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return "", nil
			}
			if err != nil {
				leader := ""
				if hint := stream.Trailer().Get(shoalv1.LeaderHintKey); len(hint) > 0 {
					leader = hint[0]
				}
				return leader, err
			}
			sub := msg.GetSubscription()
			if sub.GetClose() {
				l.Stop(sub.GetId())
				continue
			}
			l.Start(sub, open)
		}
	})
}
