package daemon

import (
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// frame is an undecoded gRPC message.
type frame struct{ data []byte }

// rawCodec passes frames through untouched and encodes anything else as
// protobuf, so one server can both proxy and serve its own services.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	if f, ok := v.(*frame); ok {
		return f.data, nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("cannot encode %T", v)
	}
	return proto.Marshal(m)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	if f, ok := v.(*frame); ok {
		f.data = append(f.data[:0], data...)
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("cannot decode into %T", v)
	}
	return proto.Unmarshal(data, m)
}

var _ encoding.Codec = rawCodec{}

// proxy relays any call the local socket does not serve itself to this
// node's manager API over mutual TLS, so local and remote clients take the
// same path through authentication and leader forwarding.
func (d *Daemon) proxy(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return errors.New("no method")
	}
	conn, err := d.managerConn()
	if err != nil {
		return err
	}
	ctx := ss.Context()
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		ctx = metadata.NewOutgoingContext(ctx, md.Copy())
	}
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		for {
			f := &frame{}
			if err := ss.RecvMsg(f); err != nil {
				if errors.Is(err, io.EOF) {
					errc <- cs.CloseSend()
					return
				}
				errc <- err
				return
			}
			if err := cs.SendMsg(f); err != nil {
				errc <- nil // the receive side reports the real error
				return
			}
		}
	}()
	for {
		f := &frame{}
		if err := cs.RecvMsg(f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if hdr, err := cs.Header(); err == nil {
			_ = ss.SetHeader(hdr)
		}
		if err := ss.SendMsg(f); err != nil {
			return err
		}
	}
}
