// Package rewrap keeps this manager's key material (the data key of its
// Raft log and snapshots, and its TLS key when autolocked) wrapped with
// the key the cluster object asks for: the unlock key while autolock is
// on, a local key otherwise. It runs on every manager, leader or not,
// and acts on what its own replica of the store says, so a manager that
// was down catches up when it next runs (unlocked with the key its disk
// was wrapped with), and a manager that joins or is promoted wraps with
// the current key as soon as it has the cluster object. It touches the
// store only through Watch and View, and the material only through
// Material.
package rewrap

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Material is this manager's key material.
type Material interface {
	// WrappedWith reports whether the material is now wrapped with the
	// key derived from unlockKey ("": with a local key, autolock off).
	WrappedWith(unlockKey string) bool
	// Rewrap wraps the material with the key derived from unlockKey
	// ("": a fresh local key) and saves it in one atomic step: the disk
	// holds the old wrapping or the new one, never neither.
	Rewrap(unlockKey string) error
}

// Store is what the loop reads of the store.
type Store interface {
	Watch() (<-chan *shoalv1.StoreEvent, func())
	View(func(store.ReadTx))
}

// Retry bounds: a failed re-wrap is tried again after MinRetry, doubling
// up to MaxRetry. A store still catching up is looked at again every
// CatchUpPoll.
const (
	MinRetry    = time.Second
	MaxRetry    = 30 * time.Second
	CatchUpPoll = 250 * time.Millisecond
)

// Config configures the loop.
type Config struct {
	Store    Store
	Material Material
	// CaughtUp reports whether the store holds the cluster's present
	// state: a manager replaying its log, or catching up after being
	// down, passes through old cluster objects (old keys, autolock on and
	// off), and must not wrap with those. nil: always.
	CaughtUp func() bool
	Clock    clock.Clock
	Log      *zap.Logger
}

// Run keeps the material wrapped as the cluster object says until ctx
// ends.
func Run(ctx context.Context, cfg Config) {
	l := &loop{cfg: cfg, retry: MinRetry}
	for ctx.Err() == nil {
		l.watch(ctx)
	}
}

type loop struct {
	cfg   Config
	retry time.Duration
	timer clock.Timer // pending retry, nil if none
}

// watch reads the cluster and follows its changes until the watch ends
// (ctx done, or the store dropped the watcher: then it is read again).
func (l *loop) watch(ctx context.Context) {
	events, cancel := l.cfg.Store.Watch()
	defer cancel()
	l.sync()
	defer l.stopTimer()
	for {
		var retry <-chan time.Time
		if l.timer != nil {
			retry = l.timer.Chan()
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.GetObject().GetCluster() != nil {
				l.sync()
			}
		case <-retry:
			l.timer = nil
			l.sync()
		}
	}
}

func (l *loop) stopTimer() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

// Want is the unlock key a cluster asks its managers to wrap with: ""
// while autolock is off. ok is false when there is no cluster object.
func Want(c *shoalv1.Cluster) (key string, ok bool) {
	if c == nil {
		return "", false
	}
	if !c.GetSpec().GetEncryption().GetAutoLockManagers() {
		return "", true
	}
	return c.GetUnlockKey(), true
}

func (l *loop) cluster() *shoalv1.Cluster {
	var cs []*shoalv1.Cluster
	l.cfg.Store.View(func(r store.ReadTx) { cs = store.List[*shoalv1.Cluster](r, store.TableCluster) })
	if len(cs) == 0 {
		return nil
	}
	return cs[0]
}

// sync re-wraps the material if the cluster asks for another key, once
// the store has caught up. A failure is retried later; the key itself is
// never logged.
func (l *loop) sync() {
	if l.cfg.CaughtUp != nil && !l.cfg.CaughtUp() {
		if l.timer == nil {
			l.timer = l.cfg.Clock.NewTimer(CatchUpPoll)
		}
		return
	}
	want, ok := Want(l.cluster())
	if !ok || l.cfg.Material.WrappedWith(want) {
		l.stopTimer()
		l.retry = MinRetry
		return
	}
	if err := l.cfg.Material.Rewrap(want); err != nil {
		l.cfg.Log.Warn("re-wrapping this manager's keys failed; retrying", zap.Bool("autolock", want != ""), zap.Duration("retry_in", l.retry), zap.Error(err))
		l.stopTimer()
		l.timer = l.cfg.Clock.NewTimer(l.retry)
		l.retry = min(2*l.retry, MaxRetry)
		return
	}
	l.stopTimer()
	l.retry = MinRetry
	l.cfg.Log.Info("re-wrapped this manager's keys with the cluster's current key", zap.Bool("autolock", want != ""))
}
