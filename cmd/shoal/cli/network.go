package cli

import (
	"context"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Manage overlay networks"}
	cmd.AddCommand(newNetworkCreateCmd(g), newNetworkLsCmd(g), newNetworkInspectCmd(g), newNetworkRmCmd(g))
	return cmd
}

type networkCreateFlags struct {
	driver, subnet, gateway string
	attachable, ingress     bool
	labels, opts            []string
}

func newNetworkCreateCmd(g *globals) *cobra.Command {
	f := &networkCreateFlags{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create an overlay network",
		Long: "Create an overlay network. Without --subnet it gets the next free subnet of the\n" +
			"cluster's address pools (10.0.0.0/8 in /24s unless swarm init said otherwise).",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := applyKV(nil, f.labels, nil, "--label")
			if err != nil {
				return err
			}
			opts, err := applyKV(nil, f.opts, nil, "--opt")
			if err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.CreateNetwork(cmd.Context(), &shoalv1.CreateNetworkRequest{Spec: &shoalv1.NetworkSpec{
				Name: args[0], Driver: f.driver, Subnet: f.subnet, Gateway: f.gateway,
				Attachable: f.attachable, Ingress: f.ingress, Labels: labels, Options: opts,
			}})
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, resp.GetNetwork().GetId())
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.driver, "driver", "d", "overlay", "network driver (overlay)")
	fs.StringVar(&f.subnet, "subnet", "", "subnet in CIDR form (default: the next free one of the address pools)")
	fs.StringVar(&f.gateway, "gateway", "", "gateway of the subnet (default: its first address)")
	fs.BoolVar(&f.attachable, "attachable", false, "let standalone containers attach")
	fs.BoolVar(&f.ingress, "ingress", false, "make this the routing mesh's ingress network")
	fs.StringArrayVar(&f.labels, "label", nil, "network label KEY=VALUE (repeatable)")
	fs.StringArrayVarP(&f.opts, "opt", "o", nil, "driver option KEY=VALUE: com.docker.network.driver.mtu=N sets the MTU of the network's interfaces")
	return cmd
}

func newNetworkLsCmd(g *globals) *cobra.Command {
	return newLsCmd(g, lsCmd[*shoalv1.Network]{
		use: "ls", short: "List networks", quietHelp: "print IDs only",
		filterHelp: "driver, id, label, name, scope (swarm), type (custom or builtin)",
		list: func(ctx context.Context, c shoalv1.ControlServiceClient, filters []*shoalv1.Filter) ([]*shoalv1.Network, error) {
			resp, err := c.ListNetworks(ctx, &shoalv1.ListNetworksRequest{Filters: filters})
			nets := resp.GetNetworks()
			sort.Slice(nets, func(i, j int) bool { return nets[i].GetSpec().GetName() < nets[j].GetSpec().GetName() })
			return nets, err
		},
		id:   (*shoalv1.Network).GetId,
		def:  "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}\t{{.Subnet}}\t{{.Gateway}}",
		cols: fixedColumns(networkColumns),
	})
}

// networkColumns are network ls's template fields: docker's, and the
// subnet and gateway.
var networkColumns = []column[*shoalv1.Network]{
	{"ID", "NETWORK ID", func(n *shoalv1.Network) any { return shortID(n.GetId()) }},
	{"Name", "NAME", func(n *shoalv1.Network) any { return n.GetSpec().GetName() }},
	{"Driver", "DRIVER", func(n *shoalv1.Network) any { return n.GetSpec().GetDriver() }},
	{"Scope", "SCOPE", func(*shoalv1.Network) any { return "swarm" }},
	{"Subnet", "SUBNET", func(n *shoalv1.Network) any { return n.GetAllocation().GetSubnet() }},
	{"Gateway", "GATEWAY", func(n *shoalv1.Network) any { return n.GetAllocation().GetGateway() }},
	{"Attachable", "ATTACHABLE", func(n *shoalv1.Network) any { return n.GetSpec().GetAttachable() }},
	{"Ingress", "INGRESS", func(n *shoalv1.Network) any { return n.GetSpec().GetIngress() }},
	{"Labels", "LABELS", func(n *shoalv1.Network) any { return formatLabels(n.GetSpec().GetLabels()) }},
	{"CreatedAt", "CREATED AT", func(n *shoalv1.Network) any { return formatTime(n.GetMeta().GetCreatedAt().AsTime()) }},
}

func newNetworkInspectCmd(g *globals) *cobra.Command {
	return newInspectCmd(g, "inspect NETWORK [NETWORK...]", "Show networks in detail (JSON)",
		func(ctx context.Context, c shoalv1.ControlServiceClient, ref string) (*shoalv1.Network, error) {
			resp, err := c.GetNetwork(ctx, &shoalv1.GetNetworkRequest{NetworkId: ref})
			return resp.GetNetwork(), err
		})
}

func newNetworkRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove networks no service uses",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			for _, ref := range args {
				if _, err := c.RemoveNetwork(cmd.Context(), &shoalv1.RemoveNetworkRequest{NetworkId: ref}); err != nil {
					return err
				}
				fmt.Fprintln(g.out, ref)
			}
			return nil
		},
	}
}
