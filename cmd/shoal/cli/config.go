package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// `shoal config`: the secret commands (secret.go) for configs, whose
// data the manager returns and inspect --pretty shows.

var configKind = objectKind[*shoalv1.Config]{
	kind:    "config",
	maxSize: maxConfigSize,
	id:      (*shoalv1.Config).GetId,
	name:    func(c *shoalv1.Config) string { return c.GetSpec().GetName() },
	create: func(ctx context.Context, c shoalv1.ControlServiceClient, name string, labels map[string]string, data []byte) (*shoalv1.Config, error) {
		resp, err := c.CreateConfig(ctx, &shoalv1.CreateConfigRequest{Spec: &shoalv1.ConfigSpec{Name: name, Labels: labels, Data: data}})
		return resp.GetConfig(), err
	},
	get: func(ctx context.Context, c shoalv1.ControlServiceClient, ref string) (*shoalv1.Config, error) {
		resp, err := c.GetConfig(ctx, &shoalv1.GetConfigRequest{ConfigId: ref})
		return resp.GetConfig(), err
	},
	list: func(ctx context.Context, c shoalv1.ControlServiceClient, filters []*shoalv1.Filter) ([]*shoalv1.Config, error) {
		resp, err := c.ListConfigs(ctx, &shoalv1.ListConfigsRequest{Filters: filters})
		return resp.GetConfigs(), err
	},
	remove: func(ctx context.Context, c shoalv1.ControlServiceClient, ref string) error {
		_, err := c.RemoveConfig(ctx, &shoalv1.RemoveConfigRequest{ConfigId: ref})
		return err
	},
	pretty: prettyConfig,
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Manage configs"}
	cmd.AddCommand(newObjectCreateCmd(g, configKind), newObjectLsCmd(g, configKind, configColumns),
		newObjectInspectCmd(g, configKind), newObjectRmCmd(g, configKind))
	return cmd
}

// configColumns are config ls's template fields: docker's.
var configColumns = []column[*shoalv1.Config]{
	{"ID", "ID", func(c *shoalv1.Config) any { return c.GetId() }},
	{"Name", "NAME", func(c *shoalv1.Config) any { return c.GetSpec().GetName() }},
	{"CreatedAt", "CREATED", func(c *shoalv1.Config) any { return ago(c.GetMeta().GetCreatedAt()) }},
	{"UpdatedAt", "UPDATED", func(c *shoalv1.Config) any { return ago(c.GetMeta().GetUpdatedAt()) }},
	{"Labels", "LABELS", func(c *shoalv1.Config) any { return formatLabels(c.GetSpec().GetLabels()) }},
}

// prettyConfig is docker's `config inspect --pretty`, with the data.
func prettyConfig(w io.Writer, c *shoalv1.Config) error {
	fmt.Fprintf(w, "ID:\t\t\t%s\n", c.GetId())
	fmt.Fprintf(w, "Name:\t\t\t%s\n", c.GetSpec().GetName())
	prettyLabels(w, c.GetSpec().GetLabels())
	fmt.Fprintf(w, "Created at:            \t%s\n", prettyTime(c.GetMeta().GetCreatedAt()))
	fmt.Fprintf(w, "Updated at:            \t%s\n", prettyTime(c.GetMeta().GetUpdatedAt()))
	_, err := fmt.Fprintf(w, "Data:\n%s\n", c.GetSpec().GetData())
	return err
}
