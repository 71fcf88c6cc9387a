package dockerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// fakeControl answers the calls the tests make; any other panics (the
// embedded interface is nil), so a test sees which calls a handler made.
type fakeControl struct {
	shoalv1.ControlServiceClient
	services map[string]*shoalv1.Service
	updates  []*shoalv1.UpdateServiceRequest
	filters  []*shoalv1.Filter
	logs     []*shoalv1.LogMessage
}

func (f *fakeControl) GetService(_ context.Context, in *shoalv1.GetServiceRequest, _ ...grpc.CallOption) (*shoalv1.GetServiceResponse, error) {
	s, ok := f.services[in.GetServiceId()]
	if !ok {
		return nil, errgrpc.ToGRPC(fmt.Errorf("service %q: %w", in.GetServiceId(), errdefs.ErrNotFound))
	}
	return &shoalv1.GetServiceResponse{Service: s}, nil
}

func (f *fakeControl) ListServices(_ context.Context, in *shoalv1.ListServicesRequest, _ ...grpc.CallOption) (*shoalv1.ListServicesResponse, error) {
	f.filters = in.GetFilters()
	var out []*shoalv1.Service
	for _, s := range f.services {
		out = append(out, s)
	}
	return &shoalv1.ListServicesResponse{Services: out}, nil
}

func (f *fakeControl) UpdateService(_ context.Context, in *shoalv1.UpdateServiceRequest, _ ...grpc.CallOption) (*shoalv1.UpdateServiceResponse, error) {
	s := f.services[in.GetServiceId()]
	if in.GetVersion() != s.GetMeta().GetVersion() {
		return nil, errgrpc.ToGRPC(fmt.Errorf("service %s was changed by someone else (version %d, you read %d); read it again and retry: %w",
			s.GetId(), s.GetMeta().GetVersion(), in.GetVersion(), errdefs.ErrConflict))
	}
	f.updates = append(f.updates, in)
	return &shoalv1.UpdateServiceResponse{Service: s}, nil
}

func (f *fakeControl) SubscribeLogs(ctx context.Context, in *shoalv1.SubscribeLogsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[shoalv1.SubscribeLogsResponse], error) {
	return &fakeStream[shoalv1.SubscribeLogsResponse]{ctx: ctx, msgs: []*shoalv1.SubscribeLogsResponse{{Messages: f.logs}}}, nil
}

type fakeSwarm struct {
	shoalv1.SwarmServiceClient
	info *shoalv1.InfoResponse
}

func (f *fakeSwarm) Info(context.Context, *shoalv1.InfoRequest, ...grpc.CallOption) (*shoalv1.InfoResponse, error) {
	return f.info, nil
}

// fakeStream replays msgs, then ends.
type fakeStream[T any] struct {
	ctx  context.Context
	msgs []*T
}

func (s *fakeStream[T]) Recv() (*T, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}
func (s *fakeStream[T]) Header() (metadata.MD, error) { return nil, nil }
func (s *fakeStream[T]) Trailer() metadata.MD         { return nil }
func (s *fakeStream[T]) CloseSend() error             { return nil }
func (s *fakeStream[T]) Context() context.Context     { return s.ctx }
func (s *fakeStream[T]) SendMsg(any) error            { return nil }
func (s *fakeStream[T]) RecvMsg(any) error            { return nil }

func newTestServer() (*Server, *fakeControl) {
	ctl := &fakeControl{services: map[string]*shoalv1.Service{
		"web": {Id: "web", Meta: &shoalv1.Meta{Version: 7}, Spec: &shoalv1.ServiceSpec{Name: "web",
			Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "nginx"}},
			Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 2}}}},
	}}
	sw := &fakeSwarm{info: &shoalv1.InfoResponse{State: "active", Manager: true, NodeId: "n1"}}
	return New(Config{Control: ctl, Swarm: sw, Host: Host{Version: "test"}}), ctl
}

func call(t *testing.T, s *Server, method, path, body string) (*http.Response, string) {
	t.Helper()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	return w.Result(), w.Body.String()
}

func TestVersionsAndErrors(t *testing.T) {
	s, _ := newTestServer()
	for _, tc := range []struct {
		method, path, body string
		code               int
		message            string
	}{
		{"GET", "/v1.40/services/web", "", 400, "client version 1.40 is too old. Minimum supported API version is 1.41, please upgrade your client to a newer version"},
		{"GET", "/v1.51/services/web", "", 400, "client version 1.51 is too new. Maximum supported API version is 1.50"},
		{"GET", "/v1.41/services/web", "", 200, ""},
		{"GET", "/v1.50/services/web", "", 200, ""},
		{"GET", "/services/web", "", 200, ""}, // no version: the newest
		{"GET", "/v1.50/services/nosuch", "", 404, `service "nosuch"`},
		{"POST", "/v1.50/services/web/update?version=6", `{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"nginx:2"}}}`, 409,
			"update out of sequence: service web was changed by someone else (version 7, you read 6)"},
		{"POST", "/v1.50/services/web/update?version=x", `{}`, 400, `invalid version "x"`},
		{"POST", "/v1.50/services/web/update?version=7", `{"Name":`, 400, "invalid JSON"},
		{"POST", "/v1.50/services/web/update?version=7", `{"Name":["a"]}`, 400, "Name must be string, not array"},
		{"POST", "/v1.50/services/web/update?version=7", ``, 400, "the request body is empty"},
		{"POST", "/v1.50/services/web/update?version=7&rollback=maybe", `{}`, 400, `invalid rollback="maybe"`},
		{"POST", "/v1.50/containers/create", `{}`, 501, "POST /containers/create is not implemented by Shoal: Shoal runs containers as services"},
		{"POST", "/v1.50/containers/abc/attach", ``, 501, "(`docker service update`), or on its node use `shoal stop`"},
		{"POST", "/v1.50/build", ``, 501, "Shoal does not build images"},
		{"GET", "/v1.50/plugins", ``, 501, "Shoal has no plugins"},
		{"GET", "/v1.50/colours", ``, 404, "page not found"},
		{"GET", "/v1.50/services?filters=%7Bbad", ``, 400, "invalid filters"},
	} {
		resp, body := call(t, s, tc.method, tc.path, tc.body)
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d %s; want %d", tc.method, tc.path, resp.StatusCode, body, tc.code)
			continue
		}
		if resp.Header.Get("Api-Version") != MaxAPIVersion {
			t.Errorf("%s %s: Api-Version %q", tc.method, tc.path, resp.Header.Get("Api-Version"))
		}
		if tc.message == "" {
			continue
		}
		var e struct{ Message string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Message, tc.message) {
			t.Errorf("%s %s: message %q; want %q", tc.method, tc.path, body, tc.message)
		}
		if strings.Contains(body, ": invalid argument") || strings.Contains(body, "rpc error") {
			t.Errorf("%s %s: the message carries internals: %s", tc.method, tc.path, body)
		}
	}
}

func TestServiceUpdate(t *testing.T) {
	s, ctl := newTestServer()
	resp, body := call(t, s, "POST", "/v1.50/services/web/update?version=7",
		`{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"nginx:2"}},"Mode":{"Replicated":{"Replicas":3}}}`)
	if resp.StatusCode != 200 || len(ctl.updates) != 1 {
		t.Fatalf("update: %d %s", resp.StatusCode, body)
	}
	u := ctl.updates[0]
	if u.GetSpec().GetTask().GetContainer().GetImage() != "nginx:2" || u.GetSpec().GetReplicated().GetReplicas() != 3 || u.GetRollback() {
		t.Errorf("update sent %v", u)
	}
	resp, body = call(t, s, "POST", "/v1.50/services/web/update?version=7&rollback=previous", `{"Name":"web"}`)
	if resp.StatusCode != 200 || len(ctl.updates) != 2 || !ctl.updates[1].GetRollback() || ctl.updates[1].GetSpec() != nil {
		t.Errorf("rollback: %d %s %v", resp.StatusCode, body, ctl.updates)
	}
	// A refused field changes nothing.
	resp, _ = call(t, s, "POST", "/v1.50/services/web/update?version=7", `{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"x","OpenStdin":true}}}`)
	if resp.StatusCode != 400 || len(ctl.updates) != 2 {
		t.Errorf("an unsupported field: %d, %d updates", resp.StatusCode, len(ctl.updates))
	}
}

func TestServiceInspectDefaults(t *testing.T) {
	s, _ := newTestServer()
	_, body := call(t, s, "GET", "/v1.50/services/web?insertDefaults=true", "")
	var svc swarm.Service
	if err := json.Unmarshal([]byte(body), &svc); err != nil {
		t.Fatal(err)
	}
	u := svc.Spec.UpdateConfig
	if u == nil || u.Parallelism != 1 || u.FailureAction != swarm.UpdateFailureActionPause || u.Monitor != 5*time.Second || u.Order != swarm.UpdateOrderStopFirst {
		t.Errorf("insertDefaults update config: %+v", u)
	}
	if r := svc.Spec.TaskTemplate.RestartPolicy; r == nil || r.Condition != swarm.RestartPolicyConditionAny || *r.Delay != 5*time.Second {
		t.Errorf("insertDefaults restart policy: %+v", r)
	}
	_, body = call(t, s, "GET", "/v1.50/services/web", "")
	if strings.Contains(body, "UpdateConfig") {
		t.Errorf("without insertDefaults: %s", body)
	}
}

func TestFilters(t *testing.T) {
	s, ctl := newTestServer()
	for _, q := range []string{`{"name":{"web":true,"db":true},"label":{"a=b":true}}`, `{"name":["db","web"],"label":["a=b"]}`} {
		if resp, body := call(t, s, "GET", "/v1.50/services?filters="+q, ""); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, body)
		}
		got := fmt.Sprint(ctl.filters)
		want := fmt.Sprint([]*shoalv1.Filter{{Key: "label", Values: []string{"a=b"}}, {Key: "name", Values: []string{"db", "web"}}})
		if got != want {
			t.Errorf("filters %s → %s; want %s", q, got, want)
		}
	}
}

// Service logs are Docker's multiplexed frames, each a whole line with
// its time and the swarm context docker service logs reads.
func TestServiceLogs(t *testing.T) {
	s, ctl := newTestServer()
	at := time.Date(2026, 12, 3, 10, 0, 0, 5, time.UTC)
	ctx := &shoalv1.LogContext{ServiceId: "web", NodeId: "n1", TaskId: "t1"}
	ctl.logs = []*shoalv1.LogMessage{
		{Context: ctx, Time: timestamppb.New(at), Stream: shoalv1.LogStream_LOG_STREAM_STDOUT, Data: []byte("out line\n")},
		{Context: ctx, Time: timestamppb.New(at), Stream: shoalv1.LogStream_LOG_STREAM_STDERR, Data: []byte("err line\n")},
	}
	resp, body := call(t, s, "GET", "/v1.50/services/web/logs?stdout=1&stderr=1&details=1&timestamps=1", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.docker.multiplexed-stream" {
		t.Fatalf("logs: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	prefix := "2026-12-03T10:00:00.000000005Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=web,com.docker.swarm.task.id=t1 "
	if out.String() != prefix+"out line\n" || errb.String() != prefix+"err line\n" {
		t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
	}
	resp, _ = call(t, s, "GET", "/v1.50/services/web/logs?stdout=1&stderr=0", "")
	if resp.StatusCode != 200 {
		t.Fatalf("stdout only: %d", resp.StatusCode)
	}
	if resp, body := call(t, s, "GET", "/v1.50/services/web/logs", ""); resp.StatusCode != 400 || !strings.Contains(body, "you must choose at least one stream") {
		t.Errorf("no stream: %d %s", resp.StatusCode, body)
	}
	if resp, body := call(t, s, "GET", "/v1.50/services/web/logs?stdout=1&tail=some", ""); resp.StatusCode != 400 || !strings.Contains(body, "tail") {
		t.Errorf("bad tail: %d %s", resp.StatusCode, body)
	}
}

func TestPing(t *testing.T) {
	s, _ := newTestServer()
	for _, m := range []string{"GET", "HEAD"} {
		resp, body := call(t, s, m, "/_ping", "")
		if resp.StatusCode != 200 || resp.Header.Get("Api-Version") != "1.50" || resp.Header.Get("Swarm") != "active/manager" {
			t.Errorf("%s /_ping: %d %v", m, resp.StatusCode, resp.Header)
		}
		if m == "GET" && body != "OK" {
			t.Errorf("GET /_ping: %q", body)
		}
	}
}

func TestUnixTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1700000000":            time.Unix(1700000000, 0),
		"1700000000.5":          time.Unix(1700000000, 500000000),
		"1700000000.000000001":  time.Unix(1700000000, 1),
		"1700000000.1234567891": time.Unix(1700000000, 123456789),
	} {
		got, err := unixTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("unixTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := unixTime("yesterday"); err == nil {
		t.Error("unixTime(yesterday) passed")
	}
}

func TestMessage(t *testing.T) {
	for in, want := range map[error]string{
		fmt.Errorf("this node is not part of a swarm; run `shoal swarm init` or `shoal swarm join`: %w", errdefs.ErrFailedPrecond):          "this node is not part of a swarm; run `docker swarm init` or `docker swarm join`",
		fmt.Errorf("network %q is in use by container c: remove them (shoal rm -f on their node) first: %w", "n", errdefs.ErrFailedPrecond): `network "n" is in use by container c: remove them (shoal rm -f on their node) first`,
		fmt.Errorf("x: %w", errNotImplemented): "x",
	} {
		if got := message(in); got != want {
			t.Errorf("message(%v) = %q; want %q", in, got, want)
		}
	}
}

type fakeRuntime struct {
	shoalv1.RuntimeServiceClient
	events []*shoalv1.ContainerEventsResponse
}

func (f *fakeRuntime) ContainerEvents(ctx context.Context, _ *shoalv1.ContainerEventsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[shoalv1.ContainerEventsResponse], error) {
	return &blockingStream[shoalv1.ContainerEventsResponse]{fakeStream: fakeStream[shoalv1.ContainerEventsResponse]{ctx: ctx, msgs: f.events}}, nil
}

func (f *fakeControl) Events(ctx context.Context, _ *shoalv1.EventsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[shoalv1.EventsResponse], error) {
	return &blockingStream[shoalv1.EventsResponse]{fakeStream: fakeStream[shoalv1.EventsResponse]{ctx: ctx, msgs: []*shoalv1.EventsResponse{
		{Events: []*shoalv1.Event{{Type: "service", Action: "create", ActorId: "s1", Attributes: map[string]string{"name": "web"}}}},
	}}}, nil
}

// blockingStream replays its messages, then blocks until its context
// ends, as a followed stream does.
type blockingStream[T any] struct{ fakeStream[T] }

func (s *blockingStream[T]) Recv() (*T, error) {
	if len(s.msgs) > 0 {
		return s.fakeStream.Recv()
	}
	<-s.ctx.Done()
	return nil, s.ctx.Err()
}

// The events stream merges the node's and the cluster's, and ends with
// its client: no goroutine outlives the request.
func TestEventsEndWithTheClient(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, _ := newTestServer()
	s.cfg.Runtime = &fakeRuntime{events: []*shoalv1.ContainerEventsResponse{
		{Events: []*shoalv1.Event{{Type: "container", Action: "start", ActorId: "c1", Attributes: map[string]string{"name": "web.1"}}}},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	w := &pipeRecorder{ResponseRecorder: httptest.NewRecorder(), w: pw}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeHTTP(w, httptest.NewRequest("GET", "/v1.50/events", nil).WithContext(ctx))
		pw.Close()
	}()
	dec := json.NewDecoder(pr)
	got := map[string]string{}
	for range 2 {
		var m struct {
			Type, Action, Scope string
		}
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		got[m.Type] = m.Action + " " + m.Scope
	}
	if got["service"] != "create swarm" || got["container"] != "start local" {
		t.Errorf("events: %v", got)
	}
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the events handler outlived its client")
	}
}

// pipeRecorder writes a response's body to a pipe, so a test reads a
// stream as it comes.
type pipeRecorder struct {
	*httptest.ResponseRecorder
	w *io.PipeWriter
}

func (p *pipeRecorder) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeRecorder) Flush()                      {}
