package worker

import (
	"fmt"
	"runtime"

	"github.com/shoal-run/shoal/internal/ctrspec"
	"github.com/shoal-run/shoal/internal/tasktmpl"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
)

// templateContext is what a task's templates may use, as swarmkit's.
func templateContext(t *shoalv1.Task, hostname string) *tasktmpl.Context {
	c := &tasktmpl.Context{}
	c.Service.ID, c.Service.Name = t.GetServiceId(), t.GetServiceName()
	c.Service.Labels = t.GetServiceLabels()
	if c.Service.Labels == nil {
		c.Service.Labels = map[string]string{}
	}
	c.Node.ID, c.Node.Hostname = t.GetNodeId(), hostname
	c.Node.Platform.Architecture, c.Node.Platform.OS = runtime.GOARCH, runtime.GOOS
	c.Task.ID = t.GetId()
	c.Task.Slot = fmt.Sprint(t.GetSlot())
	if t.GetSlot() == 0 {
		c.Task.Slot = t.GetNodeId()
	}
	c.Task.Name = fmt.Sprintf("%s.%s.%s", t.GetServiceName(), c.Task.Slot, t.GetId())
	return c
}

// applyTaskOptions fills what a task's spec leaves to its node: the
// templates in the hostname, the environment's values and the mounts'
// sources and targets, and the log driver's options.
func applyTaskOptions(t *shoalv1.Task, hostname string, s *container.Spec) error {
	ctx := templateContext(t, hostname)
	var err error
	if s.Hostname, err = ctx.Expand(s.Hostname); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	if s.Env, err = ctx.ExpandEnv(s.Env); err != nil {
		return err
	}
	mounts := make([]container.Mount, len(s.Mounts))
	for i, m := range s.Mounts {
		if m.Source, err = ctx.Expand(m.Source); err != nil {
			return fmt.Errorf("mount source: %w", err)
		}
		if m.Target, err = ctx.Expand(m.Target); err != nil {
			return fmt.Errorf("mount target: %w", err)
		}
		mounts[i] = m
	}
	s.Mounts = mounts
	ld := t.GetSpec().GetLogDriver()
	if s.LogMaxSize, s.LogMaxFiles, err = ctrspec.LogOptions(ld.GetName(), ld.GetOptions()); err != nil {
		return err
	}
	return nil
}
