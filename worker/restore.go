package worker

import (
	"go.uber.org/zap"

	"github.com/shoal-run/shoal/netoverlay"
	"github.com/shoal-run/shoal/runtime/container"
)

// RestoreNetworks plugs every running container on overlay networks in
// again and announces it, after a daemon restart and without waiting for
// a manager (there may be none answering), from the networks its labels
// carry: task containers through net, standalone ones through att (which
// withdraws them when they exit). The assignments, once a leader sends
// them, change only what they disagree with. A task container with a
// health check is plugged in but not announced: its runner probes it
// again and announces it once healthy.
func RestoreNetworks(containers []container.State, net Networker, att *Attachments, log *zap.Logger) {
	for _, c := range containers {
		v, ok := c.Labels[netoverlay.LabelNetworks]
		if !ok || c.Status != container.Running || c.Pid <= 0 {
			continue
		}
		t, err := netoverlay.DecodeNetworks(v)
		if err != nil {
			log.Warn("overlay: a container's networks label", zap.String("container", c.ID), zap.Error(err))
			continue
		}
		if err := net.Attach(t, netoverlay.ProcNetns(c.Pid)); err != nil {
			log.Warn("overlay: plug a running container in again", zap.String("container", c.ID), zap.Error(err))
			continue
		}
		if c.Labels[netoverlay.LabelAttachment] != "" {
			att.Running(c.ID, c.Labels) // and withdrawn when it exits
			continue
		}
		if c.Labels[LabelHealthCheck] != "" {
			continue // announced once its check passes again (the runner's)
		}
		net.Ready(t.GetId(), true)
	}
}
