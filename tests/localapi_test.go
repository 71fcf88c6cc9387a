package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
)

// The local socket answers an error with its category's gRPC code on
// streaming calls as on unary ones, and on the calls it relays to the
// manager API.
func TestLocalAPIErrorCodes(t *testing.T) {
	needRoot(t)
	n := harness.NewNode(t, "node1")
	n.Start()
	t.Cleanup(n.Stop)
	conn := n.LocalConn()
	rc := shoalv1.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// recv opens a server stream and returns the error of its first
	// message.
	recv := func(open func() (interface{ RecvMsg(any) error }, error), msg any) error {
		s, err := open()
		if err != nil {
			return err
		}
		return s.RecvMsg(msg)
	}
	for _, tc := range []struct {
		name string
		code codes.Code
		msg  string
		call func() error
	}{
		{"unary: remove an unknown container", codes.NotFound, "no such container: nosuch: not found", func() error {
			_, err := rc.RemoveContainer(ctx, &shoalv1.RemoveContainerRequest{Id: "nosuch"})
			return err
		}},
		{"stream: logs of an unknown container", codes.NotFound, "no such container: nosuch: not found", func() error {
			return recv(func() (interface{ RecvMsg(any) error }, error) {
				return rc.ContainerLogs(ctx, &shoalv1.ContainerLogsRequest{Id: "nosuch"})
			}, &shoalv1.ContainerLogsResponse{})
		}},
		{"stream: pull of a malformed reference", codes.InvalidArgument, `invalid image reference "Not A Ref"`, func() error {
			return recv(func() (interface{ RecvMsg(any) error }, error) {
				return rc.PullImage(ctx, &shoalv1.PullImageRequest{Ref: "Not A Ref"})
			}, &shoalv1.PullImageResponse{})
		}},
		{"relayed: the control API on a node outside a swarm", codes.FailedPrecondition, "this node is not part of a swarm; run `shoal swarm init` or `shoal swarm join`", func() error {
			_, err := shoalv1.NewControlServiceClient(conn).ListServices(ctx, &shoalv1.ListServicesRequest{})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			s, _ := status.FromError(err)
			if s.Code() != tc.code || !strings.Contains(s.Message(), tc.msg) {
				t.Errorf("got %v %q; want %v with %q", s.Code(), s.Message(), tc.code, tc.msg)
			}
		})
	}
}
