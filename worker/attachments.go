package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/netoverlay"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
)

// Attachments connect standalone containers (shoal run --network NET) to
// attachable overlay networks: the leader gives each an address (asked
// for with an ID the node picks, so a retry is not allocated twice), the
// container carries it in its labels, and the node's overlay plugs it in
// when it starts, like a task. The address goes back when the container
// is removed; one a node failed to give back (no manager answered, the
// daemon died) is given back once a heartbeat lists an attachment no
// container of the node has.
type Attachments struct {
	ctx context.Context // the node's lifetime: releases end with it
	cfg AttachmentsConfig

	mu        sync.Mutex
	pending   map[string]bool // asked for, container not created yet
	releasing bool            // a reconcile is giving attachments back
}

// AttachmentsConfig is what attachments need of the node.
type AttachmentsConfig struct {
	// Containers are the node's containers.
	Containers Containers
	// Net is the node's overlay.
	Net AttachableNet
	// Dispatch runs fn against the managers' dispatcher in turn until one
	// answers; it fails with ErrNotInSwarm while the node is in no
	// cluster.
	Dispatch func(ctx context.Context, fn func(context.Context, shoalv1.DispatcherServiceClient) error) error
	// NewID picks an attachment's ID.
	NewID func() string
	Log   *zap.Logger
}

// Containers is what attachments need of the container runtime.
type Containers interface {
	List() []container.State
	// Done is closed when the container exits.
	Done(id string) (<-chan struct{}, error)
}

// AttachableNet is the overlay standalone containers are plugged into.
type AttachableNet interface {
	Networker
	// Get is the node's overlay, made now if it is not yet; its error
	// says why the node has none.
	Get() (*netoverlay.Node, error)
}

// ErrNotInSwarm is returned by calls that need cluster membership.
var ErrNotInSwarm = errors.New("this node is not part of a swarm")

// NewAttachments connects standalone containers of a node whose lifetime
// is ctx.
func NewAttachments(ctx context.Context, cfg AttachmentsConfig) *Attachments {
	return &Attachments{ctx: ctx, cfg: cfg, pending: map[string]bool{}}
}

// callLeader runs fn against the managers, the way heartbeats do.
func (a *Attachments) callLeader(ctx context.Context, fn func(context.Context, shoalv1.DispatcherServiceClient) error) error {
	err := a.cfg.Dispatch(ctx, fn)
	if errors.Is(err, ErrNotInSwarm) {
		return fmt.Errorf("overlay networks need the node to be in a swarm: %w", errdefs.ErrFailedPrecond)
	}
	return err
}

// Join implements runtimeapi.Networks.
func (a *Attachments) Join(ctx context.Context, network, name string) (map[string]string, func(created bool), error) {
	if _, err := a.cfg.Net.Get(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecond)
	}
	id := a.cfg.NewID()
	a.mu.Lock()
	a.pending[id] = true
	a.mu.Unlock()
	var att *shoalv1.ContainerAttachment
	err := a.callLeader(ctx, func(cctx context.Context, c shoalv1.DispatcherServiceClient) error {
		resp, err := c.AttachNetwork(cctx, &shoalv1.AttachNetworkRequest{Id: id, Network: network, ContainerName: name})
		att = resp.GetAttachment()
		return err
	})
	if err != nil {
		a.mu.Lock()
		delete(a.pending, id)
		a.mu.Unlock()
		a.release(id) // the answer may have been lost after the write
		return nil, nil, fmt.Errorf("attach to network %q: %w", network, err)
	}
	v, err := netoverlay.EncodeNetworks(&shoalv1.Task{Id: att.GetId(), Networks: []*shoalv1.TaskNetwork{att.GetNetwork()}})
	if err != nil {
		a.release(id)
		return nil, nil, err
	}
	labels := map[string]string{netoverlay.LabelNetworks: v, netoverlay.LabelAttachment: att.GetId()}
	done := func(created bool) {
		a.mu.Lock()
		delete(a.pending, id)
		a.mu.Unlock()
		if !created {
			a.release(id)
		}
	}
	return labels, done, nil
}

// Started implements runtimeapi.Networks: the container (its init's PID)
// is plugged in and announced; when it exits it is withdrawn.
func (a *Attachments) Started(containerID string, labels map[string]string, pid int) error {
	t, err := netoverlay.DecodeNetworks(labels[netoverlay.LabelNetworks])
	if err != nil {
		return err
	}
	if err := a.cfg.Net.Attach(t, netoverlay.ProcNetns(pid)); err != nil {
		return err
	}
	return nil
}

// Running implements runtimeapi.Networks: the workload runs; it is
// announced until it exits.
func (a *Attachments) Running(containerID string, labels map[string]string) {
	id := labels[netoverlay.LabelAttachment]
	a.cfg.Net.Ready(id, true)
	done, err := a.cfg.Containers.Done(containerID)
	if err != nil {
		_ = a.cfg.Net.Detach(id)
		return
	}
	go func() {
		<-done
		a.cfg.Net.Ready(id, false)
		_ = a.cfg.Net.Detach(id) // its namespace went with it
	}()
}

// Removed implements runtimeapi.Networks.
func (a *Attachments) Removed(labels map[string]string) {
	id := labels[netoverlay.LabelAttachment]
	if id == "" {
		return
	}
	_ = a.cfg.Net.Detach(id)
	a.release(id)
}

// release gives an attachment's address back, best effort: what fails
// here is given back after a later heartbeat (Reconcile).
func (a *Attachments) release(id string) {
	ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
	defer cancel()
	err := a.callLeader(ctx, func(cctx context.Context, c shoalv1.DispatcherServiceClient) error {
		_, err := c.DetachNetwork(cctx, &shoalv1.DetachNetworkRequest{Id: id})
		return err
	})
	if err != nil {
		a.cfg.Log.Info("network attachment not given back yet; retried after a heartbeat", zap.String("attachment", id), zap.Error(err))
	}
}

// Reconcile gives back the attachments a heartbeat lists that no
// container of this node has and none is being created with.
func (a *Attachments) Reconcile(ids []string) {
	if len(ids) == 0 {
		return
	}
	// Pending first: one that stops being pending after this has its
	// container in the list below.
	a.mu.Lock()
	pending := map[string]bool{}
	for id := range a.pending {
		pending[id] = true
	}
	a.mu.Unlock()
	have := map[string]bool{}
	for _, c := range a.cfg.Containers.List() {
		if id := c.Labels[netoverlay.LabelAttachment]; id != "" {
			have[id] = true
		}
	}
	var stale []string
	for _, id := range ids {
		if !have[id] && !pending[id] {
			stale = append(stale, id)
		}
	}
	if len(stale) == 0 {
		return
	}
	// Not on the heartbeat loop: a slow manager must not delay the
	// node's heartbeats. One reconcile at a time; the next heartbeat
	// lists what this one missed.
	a.mu.Lock()
	if a.releasing {
		a.mu.Unlock()
		return
	}
	a.releasing = true
	a.mu.Unlock()
	go func() {
		defer func() {
			a.mu.Lock()
			a.releasing = false
			a.mu.Unlock()
		}()
		for _, id := range stale {
			a.cfg.Log.Info("giving back the network attachment of a container that is gone", zap.String("attachment", id))
			a.release(id)
		}
	}()
}
