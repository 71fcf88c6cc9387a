package manager

import (
	"errors"
	"io"

	"google.golang.org/grpc"

	"github.com/shoal-run/shoal/internal/errgrpc"
	"github.com/shoal-run/shoal/manager/auth"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// forwardLogs relays a SubscribeLogs stream from the leader, vouching
// for the caller.
func (m *Manager) forwardLogs(req *shoalv1.SubscribeLogsRequest, stream grpc.ServerStreamingServer[shoalv1.SubscribeLogsResponse]) error {
	ctx := stream.Context()
	c, _ := auth.From(ctx)
	addr, err := m.fwd.LeaderAddr()
	if err != nil {
		return err
	}
	conn, err := m.fwd.Conn(addr)
	if err != nil {
		return err
	}
	up, err := shoalv1.NewControlServiceClient(conn).SubscribeLogs(auth.ForwardMetadata(ctx, c), req, grpc.WaitForReady(true))
	if err != nil {
		return errgrpc.FromGRPC(err)
	}
	for {
		msg, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errgrpc.FromGRPC(err)
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
}
