package worker

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/shoal-run/shoal/internal/clock"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
	"github.com/shoal-run/shoal/runtime/logs"
)

// fakeSource is a node's containers with fixed output; a following read
// waits for ctx after its lines.
type fakeSource struct {
	mu    sync.Mutex
	ctrs  []container.State
	lines map[string][]string
	tails map[string]int
}

func (f *fakeSource) List() []container.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ctrs)
}

func (f *fakeSource) add(id, task, svc string, lines ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctrs = append(f.ctrs, container.State{ID: id, Labels: map[string]string{LabelTask: task, LabelService: svc}})
	f.lines[id] = lines
}

func (f *fakeSource) ReadLogs(ctx context.Context, ref string, follow bool, o logs.Options, fn func(logs.Entry) error) error {
	f.mu.Lock()
	lines := f.lines[ref]
	f.tails[ref] = o.Tail
	f.mu.Unlock()
	if o.Tail >= 0 && o.Tail < len(lines) {
		lines = lines[len(lines)-o.Tail:]
	}
	for _, l := range lines {
		if err := fn(logs.Entry{Log: l, Stream: "stdout", Time: time.Unix(0, 0)}); err != nil {
			return err
		}
	}
	if follow {
		<-ctx.Done()
	}
	return nil
}

// fakePublish is a publish stream that records what is sent.
type fakePublish struct {
	grpc.ClientStream
	mu     sync.Mutex
	sent   []*shoalv1.PublishLogsRequest
	closed chan struct{}
}

func (p *fakePublish) Send(m *shoalv1.PublishLogsRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, m)
	return nil
}

func (p *fakePublish) CloseAndRecv() (*shoalv1.PublishLogsResponse, error) {
	close(p.closed)
	return &shoalv1.PublishLogsResponse{}, nil
}

func (p *fakePublish) Header() (metadata.MD, error) { return nil, nil }

func (p *fakePublish) lines() ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	closed := false
	for _, m := range p.sent {
		if m.GetSubscriptionId() != "sub" {
			return []string{"wrong subscription " + m.GetSubscriptionId()}, false
		}
		for _, l := range m.GetMessages() {
			out = append(out, l.GetContext().GetTaskId()+":"+string(l.GetData()))
		}
		closed = closed || m.GetClose()
	}
	sort.Strings(out)
	return out, closed
}

func newPublisher(ctx context.Context, src *fakeSource, clk clock.Clock) *LogPublisher {
	return &LogPublisher{Source: src, Clock: clk, Log: zap.NewNop(), Ctx: ctx}
}

// Without follow: every matching container's lines (the tail of each),
// none of the others', then close.
func TestLogPublisherOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	src := &fakeSource{lines: map[string][]string{}, tails: map[string]int{}}
	src.add("c1", "t1", "web", "a", "b", "c")
	src.add("c2", "t2", "web", "d")
	src.add("c3", "t3", "db", "secret")
	src.add("c4", "", "web", "not a task")
	p := newPublisher(context.Background(), src, clock.Real())
	stream := &fakePublish{closed: make(chan struct{})}
	p.Start(&shoalv1.LogSubscription{Id: "sub", Selector: &shoalv1.LogSelector{ServiceIds: []string{"web"}}, Options: &shoalv1.LogOptions{Tail: 2}},
		func(context.Context) (publishStream, error) { return stream, nil })
	select {
	case <-stream.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the publish stream was not closed")
	}
	p.Wait()
	got, closed := stream.lines()
	if want := []string{"t1:b", "t1:c", "t2:d"}; !slices.Equal(got, want) || !closed {
		t.Fatalf("published %q (closed %v); want %q and a close", got, closed, want)
	}
}

// Following: a container that appears later (a restart, a new task) is
// read whole; Stop ends the reading.
func TestLogPublisherFollows(t *testing.T) {
	defer goleak.VerifyNone(t)
	clk := clock.NewFake(time.Unix(0, 0))
	src := &fakeSource{lines: map[string][]string{}, tails: map[string]int{}}
	src.add("c1", "t1", "web", "old", "new")
	p := newPublisher(context.Background(), src, clk)
	stream := &fakePublish{closed: make(chan struct{})}
	p.Start(&shoalv1.LogSubscription{Id: "sub", Selector: &shoalv1.LogSelector{TaskIds: []string{"t1"}}, Options: &shoalv1.LogOptions{Follow: true, Tail: 1}},
		func(context.Context) (publishStream, error) { return stream, nil })
	// The first container is being read before the second appears.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		clk.Advance(batchWait)
		if got, _ := stream.lines(); len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first container was not read")
		}
	}
	src.add("c2", "t1", "web", "restarted", "again")
	want := []string{"t1:again", "t1:new", "t1:restarted"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		clk.Advance(rescan)
		got, _ := stream.lines()
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %q; want %q", got, want)
		}
		time.Sleep(time.Millisecond)
	}
	src.mu.Lock()
	tails := map[string]int{"c1": src.tails["c1"], "c2": src.tails["c2"]}
	src.mu.Unlock()
	if tails["c1"] != 1 || tails["c2"] != -1 {
		t.Fatalf("tails %v; want the first container's 1, the later one's all", tails)
	}
	p.Stop("sub")
	select {
	case <-stream.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not end the publishing")
	}
	p.Wait()
}
