// Package tasktmpl expands Swarm's service templates: a task's hostname,
// environment values and mount sources and targets may use the service,
// the task and the node it runs on, as in
//
//	--hostname '{{.Service.Name}}-{{.Task.Slot}}'
//	--env 'NODE={{.Node.Hostname}}'
//	--mount 'type=volume,source=data-{{.Task.Slot}},target=/data'
//
// The fields are swarmkit's. A template that does not parse, or names a
// field that does not exist, is an error: the control API refuses it when
// the service is written (Check), so a node never meets one it cannot
// expand.
package tasktmpl

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
)

// Context is what a template may use.
type Context struct {
	Service struct {
		ID     string
		Name   string
		Labels map[string]string
	}
	Node struct {
		ID       string
		Hostname string
		Platform struct {
			Architecture string
			OS           string
		}
	}
	Task struct {
		ID   string
		Name string
		// Slot is the replica's number, or for a global service's task the
		// node's ID, as swarmkit's.
		Slot string
	}
}

// Expand is s with its templates filled from c; a string without "{{" is
// returned as it is.
func (c *Context) Expand(s string) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	t, err := template.New("expansion").Option("missingkey=error").Parse(s)
	if err != nil {
		return "", fmt.Errorf("template %q: %w", s, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, c); err != nil {
		return "", fmt.Errorf("template %q: %w", s, err)
	}
	return b.String(), nil
}

// ExpandEnv expands the values (never the names) of KEY=VALUE entries.
func (c *Context) ExpandEnv(env []string) ([]string, error) {
	if env == nil {
		return nil, nil
	}
	out := make([]string, 0, len(env))
	for _, e := range env {
		k, v, ok := strings.Cut(e, "=")
		if ok {
			x, err := c.Expand(v)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", k, err)
			}
			e = k + "=" + x
		}
		out = append(out, e)
	}
	return out, nil
}

// Sample is a context with every field set, for checking templates
// before any task exists.
func Sample() *Context {
	c := &Context{}
	c.Service.ID, c.Service.Name, c.Service.Labels = "svc0000000000000000000000", "service", map[string]string{}
	c.Node.ID, c.Node.Hostname = "node000000000000000000000", "node"
	c.Node.Platform.Architecture, c.Node.Platform.OS = "amd64", "linux"
	c.Task.ID, c.Task.Name, c.Task.Slot = "task000000000000000000000", "service.1.task000000000000000000000", "1"
	return c
}

// Check reports whether s is a template a node can expand, returning its
// expansion with the sample context.
func Check(s string) (string, error) {
	return Sample().Expand(s)
}
