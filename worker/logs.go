package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
	"github.com/shoal-run/shoal/runtime/logs"
)

// publishStream is a publish stream to the manager (session.PublishStream).
type publishStream = grpc.ClientStreamingClient[shoalv1.PublishLogsRequest, shoalv1.PublishLogsResponse]

// LogSource is what the publisher reads: the node's containers and their
// log files.
type LogSource interface {
	List() []container.State
	ReadLogs(ctx context.Context, ref string, follow bool, o logs.Options, fn func(logs.Entry) error) error
}

// Log publishing bounds: a batch goes out when it holds batchLines lines
// or has waited batchWait; a follower looks for new containers of its
// tasks (a restart, a new replica) every rescan.
const (
	batchLines = 256
	batchWait  = 25 * time.Millisecond
	rescan     = 250 * time.Millisecond
)

// LogPublisher reads this node's part of the leader's log subscriptions
// from the containers' log files and publishes it. A reader that falls
// behind holds back only its own reading: the files take the output.
type LogPublisher struct {
	Source LogSource
	Clock  clock.Clock
	Log    *zap.Logger
	// Ctx bounds every reading (the daemon's life).
	Ctx context.Context

	mu   sync.Mutex
	subs map[string]context.CancelFunc
	wg   sync.WaitGroup
}

// Start implements session.LogSubscriptions.
func (p *LogPublisher) Start(sub *shoalv1.LogSubscription, open func(ctx context.Context) (publishStream, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.subs == nil {
		p.subs = map[string]context.CancelFunc{}
	}
	if _, ok := p.subs[sub.GetId()]; ok {
		return
	}
	ctx, cancel := context.WithCancel(p.Ctx)
	p.subs[sub.GetId()] = cancel
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := p.publish(ctx, sub, open)
		if err != nil && ctx.Err() == nil {
			p.Log.Debug("log subscription", zap.String("subscription", sub.GetId()), zap.Error(err))
		}
		p.mu.Lock()
		delete(p.subs, sub.GetId())
		p.mu.Unlock()
		cancel()
	}()
}

// Stop implements session.LogSubscriptions.
func (p *LogPublisher) Stop(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cancel, ok := p.subs[id]; ok {
		cancel()
		delete(p.subs, id)
	}
}

// Reset implements session.LogSubscriptions.
func (p *LogPublisher) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, cancel := range p.subs {
		cancel()
		delete(p.subs, id)
	}
}

// Wait waits for every reading to end (after Ctx ends).
func (p *LogPublisher) Wait() { p.wg.Wait() }

// matches reports whether a container is one of sub's tasks'.
func matches(sel *shoalv1.LogSelector, st container.State) bool {
	task := st.Labels[LabelTask]
	if task == "" {
		return false // not a task's container (shoal run)
	}
	return slices.Contains(sel.GetTaskIds(), task) || slices.Contains(sel.GetServiceIds(), st.Labels[LabelService])
}

// batcher gathers lines into publish messages; send is not safe for
// concurrent use, so every send holds mu.
type batcher struct {
	id    string
	mu    sync.Mutex
	batch *shoalv1.PublishLogsRequest
	send  func(*shoalv1.PublishLogsRequest) error
	err   error
}

func (b *batcher) add(m *shoalv1.LogMessage, warning string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	if m != nil {
		b.batch.Messages = append(b.batch.Messages, m)
	}
	if warning != "" {
		b.batch.Warnings = append(b.batch.Warnings, warning)
	}
	if len(b.batch.Messages) >= batchLines || warning != "" {
		return b.flushLocked(false)
	}
	return nil
}

func (b *batcher) flush(close bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked(close)
}

func (b *batcher) flushLocked(close bool) error {
	if b.err != nil {
		return b.err
	}
	if len(b.batch.Messages) == 0 && len(b.batch.Warnings) == 0 && !close {
		return nil
	}
	m := b.batch
	m.Close = close
	b.batch = &shoalv1.PublishLogsRequest{SubscriptionId: b.id}
	b.err = b.send(m)
	return b.err
}

// publish reads sub's containers on this node into one publish stream.
func (p *LogPublisher) publish(ctx context.Context, sub *shoalv1.LogSubscription, open func(ctx context.Context) (publishStream, error)) error {
	stream, err := open(ctx)
	if err != nil {
		return err
	}
	defer func() { _, _ = stream.CloseAndRecv() }()
	b := &batcher{id: sub.GetId(), batch: &shoalv1.PublishLogsRequest{SubscriptionId: sub.GetId()}, send: stream.Send}
	// The first message names the subscription even when there is
	// nothing to say yet.
	if err := stream.Send(&shoalv1.PublishLogsRequest{SubscriptionId: sub.GetId()}); err != nil {
		return err
	}
	// The readers end together: on the first one's error, or when ctx
	// ends (Stop, Reset); a follower's publish ends only so.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, rctx := errgroup.WithContext(ctx)
	seen := map[string]bool{}
	// The tail is of the containers there when the subscription began;
	// one that starts later (a restart, a new task) is read whole.
	tail := sub.GetOptions().GetTail()
	startReaders := func() {
		for _, st := range p.Source.List() {
			if seen[st.ID] || !matches(sub.GetSelector(), st) {
				continue
			}
			seen[st.ID] = true
			g.Go(func(tail int64) func() error {
				return func() error { return p.read(rctx, sub, st, tail, b) }
			}(tail))
		}
		tail = -1
	}
	startReaders()
	if !sub.GetOptions().GetFollow() {
		if err := g.Wait(); err != nil {
			return err
		}
		return b.flush(true)
	}
	flush := p.Clock.NewTicker(batchWait)
	defer flush.Stop()
	look := p.Clock.NewTicker(rescan)
	defer look.Stop()
	for {
		select {
		case <-rctx.Done():
			return g.Wait()
		case <-flush.Chan():
			if err := b.flush(false); err != nil {
				cancel() // the stream is broken: end the readers
				_ = g.Wait()
				return err
			}
		case <-look.Chan():
			startReaders()
		}
	}
}

// read publishes one container's lines.
func (p *LogPublisher) read(ctx context.Context, sub *shoalv1.LogSubscription, st container.State, tail int64, b *batcher) error {
	o := sub.GetOptions()
	lctx := &shoalv1.LogContext{ServiceId: st.Labels[LabelService], TaskId: st.Labels[LabelTask]}
	opts := logs.Options{Tail: int(tail), Lost: func(after time.Time) {
		_ = b.add(nil, fmt.Sprintf("task %s: lines written after %s were rotated out of its log files before they were read (this reader fell behind)",
			lctx.GetTaskId(), after.UTC().Format(time.RFC3339Nano)))
	}}
	if o.GetSince() != nil {
		opts.Since = o.GetSince().AsTime()
	}
	if o.GetUntil() != nil {
		opts.Until = o.GetUntil().AsTime()
	}
	err := p.Source.ReadLogs(ctx, st.ID, o.GetFollow(), opts, func(e logs.Entry) error {
		stream := shoalv1.LogStream_LOG_STREAM_STDOUT
		if e.Stream == "stderr" {
			stream = shoalv1.LogStream_LOG_STREAM_STDERR
		}
		return b.add(&shoalv1.LogMessage{Context: lctx, Time: timestamppb.New(e.Time), Stream: stream, Data: []byte(e.Log)}, "")
	})
	if err != nil && ctx.Err() == nil && errors.Is(err, errdefs.ErrNotFound) {
		return nil // removed before it could be read
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}
