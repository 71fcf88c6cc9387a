package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func newNodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Manage nodes"}
	cmd.AddCommand(newNodeLsCmd(g), newNodeInspectCmd(g), newNodeUpdateCmd(g), newNodePsCmd(g),
		newNodeRoleCmd(g, "promote", shoalv1.NodeRole_NODE_ROLE_MANAGER),
		newNodeRoleCmd(g, "demote", shoalv1.NodeRole_NODE_ROLE_WORKER), newNodeRmCmd(g))
	return cmd
}

// selfID asks the local daemon which node it is ("" over tcp).
func (g *globals) selfID(ctx context.Context) string {
	if strings.HasPrefix(g.host, "tcp://") {
		return ""
	}
	c, done, err := g.swarm()
	if err != nil {
		return ""
	}
	defer done()
	info, err := c.Info(ctx, &shoalv1.InfoRequest{})
	if err != nil {
		return ""
	}
	return info.GetNodeId()
}

func managerStatus(n *shoalv1.Node) string {
	ms := n.GetManagerStatus()
	switch {
	case ms == nil || ms.GetReachability() == shoalv1.Reachability_REACHABILITY_UNSPECIFIED:
		return ""
	case ms.GetLeader():
		return "Leader"
	case ms.GetReachability() == shoalv1.Reachability_REACHABILITY_REACHABLE:
		return "Reachable"
	}
	return "Unreachable"
}

func newNodeLsCmd(g *globals) *cobra.Command {
	return newLsCmd(g, lsCmd[*shoalv1.Node]{
		use: "ls", short: "List nodes", quietHelp: "print IDs only",
		filterHelp: "id, label (engine labels), node.label, membership (accepted or pending), name (hostname), role (manager or worker)",
		list: func(ctx context.Context, c shoalv1.ControlServiceClient, filters []*shoalv1.Filter) ([]*shoalv1.Node, error) {
			resp, err := c.ListNodes(ctx, &shoalv1.ListNodesRequest{Filters: filters})
			return resp.GetNodes(), err
		},
		id:  (*shoalv1.Node).GetId,
		def: "table {{.ID}} {{if .Self}}*{{else}} {{end}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}",
		cols: func(ctx context.Context, _ shoalv1.ControlServiceClient, _ []*shoalv1.Node) ([]column[*shoalv1.Node], error) {
			return nodeColumns(g.selfID(ctx)), nil
		},
	})
}

// nodeColumns are node ls's template fields, docker's; Self is whether
// the node is the one the CLI talks to.
func nodeColumns(self string) []column[*shoalv1.Node] {
	return []column[*shoalv1.Node]{
		{"ID", "ID", func(n *shoalv1.Node) any { return n.GetId() }},
		{"Self", "", func(n *shoalv1.Node) any { return n.GetId() == self }},
		{"Hostname", "HOSTNAME", func(n *shoalv1.Node) any { return n.GetDescription().GetHostname() }},
		{"Status", "STATUS", func(n *shoalv1.Node) any {
			return titleCase(enumName(n.GetStatus().GetState().String(), "NODE_STATE_"))
		}},
		{"Availability", "AVAILABILITY", func(n *shoalv1.Node) any {
			return titleCase(enumName(n.GetSpec().GetAvailability().String(), "NODE_AVAILABILITY_"))
		}},
		{"ManagerStatus", "MANAGER STATUS", func(n *shoalv1.Node) any { return managerStatus(n) }},
		{"EngineVersion", "ENGINE VERSION", func(n *shoalv1.Node) any { return n.GetDescription().GetVersion() }},
	}
}

func newNodeInspectCmd(g *globals) *cobra.Command {
	get := func(ctx context.Context, c shoalv1.ControlServiceClient, ref string) (*shoalv1.Node, error) {
		resp, err := c.GetNode(ctx, &shoalv1.GetNodeRequest{NodeId: ref}) // "self": the calling node
		return resp.GetNode(), err
	}
	cmd := newInspectCmd(g, "inspect [OPTIONS] self|NODE [NODE...]", "Display detailed information on one or more nodes", get)
	withPretty(g, cmd, "--format is incompatible with human friendly format", get,
		func(_ context.Context, _ shoalv1.ControlServiceClient, w *strings.Builder, nodes []*shoalv1.Node) error {
			for i, n := range nodes {
				if i > 0 {
					w.WriteString("\n\n")
				}
				prettyNode(w, n)
			}
			return nil
		})
	return cmd
}

// prettyNode is docker's node inspect --pretty.
func prettyNode(w *strings.Builder, n *shoalv1.Node) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	labels := func(title string, m map[string]string) {
		if len(m) == 0 {
			return
		}
		p("%s:", title)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if v := m[k]; v != "" {
				p(" - %s=%s", k, v)
			} else {
				p(" - %s", k)
			}
		}
	}
	d, st := n.GetDescription(), n.GetStatus()
	p("ID:\t\t\t%s", n.GetId())
	labels("Labels", n.GetSpec().GetLabels())
	p("Hostname:              \t%s", d.GetHostname())
	p("Joined at:             \t%s", n.GetMeta().GetCreatedAt().AsTime().Format("2006-01-02 15:04:05.999999999 -0700 MST"))
	p("Status:")
	p(" State:\t\t\t%s", titleCase(enumName(st.GetState().String(), "NODE_STATE_")))
	if st.GetMessage() != "" {
		p(" Message:              \t%s", st.GetMessage())
	}
	p(" Availability:         \t%s", titleCase(enumName(n.GetSpec().GetAvailability().String(), "NODE_AVAILABILITY_")))
	if st.GetAddr() != "" {
		p(" Address:\t\t%s", st.GetAddr())
	}
	if ms := n.GetManagerStatus(); ms != nil {
		p("Manager Status:")
		p(" Address:\t\t%s", ms.GetAddr())
		p(" Raft Status:\t\t%s", titleCase(enumName(ms.GetReachability().String(), "REACHABILITY_")))
		leader := "No"
		if ms.GetLeader() {
			leader = "Yes"
		}
		p(" Leader:\t\t%s", leader)
	}
	p("Platform:")
	p(" Operating System:\t%s", d.GetPlatform().GetOs())
	p(" Architecture:\t\t%s", d.GetPlatform().GetArchitecture())
	p("Resources:")
	p(" CPUs:\t\t\t%d", d.GetResources().GetNanoCpus()/1e9)
	p(" Memory:\t\t%s", bytesSize(d.GetResources().GetMemoryBytes()))
	p("Engine Version:\t\t%s", d.GetVersion())
	labels("Engine Labels", d.GetEngineLabels())
}

// updateNode reads a node, changes its spec with fn and writes it back
// with the version it read. The node object also carries what its
// heartbeats report (address, state, description), so it can change
// between the read and the write without anyone touching its spec; the
// edit is then applied again to what is there now, a few times, instead
// of failing the operator's command (no one's change is lost: fn edits
// the spec it is given, and the write still names the version read).
func (g *globals) updateNode(ctx context.Context, ref string, force bool, fn func(*shoalv1.NodeSpec) error) (*shoalv1.Node, error) {
	c, done, err := g.control()
	if err != nil {
		return nil, err
	}
	defer done()
	for attempt := 1; ; attempt++ {
		resp, err := c.GetNode(ctx, &shoalv1.GetNodeRequest{NodeId: ref})
		if err != nil {
			return nil, err
		}
		n := resp.GetNode()
		spec := proto.Clone(n.GetSpec()).(*shoalv1.NodeSpec)
		if err := fn(spec); err != nil {
			return nil, err
		}
		up, err := c.UpdateNode(ctx, &shoalv1.UpdateNodeRequest{NodeId: n.GetId(), Version: n.GetMeta().GetVersion(), Spec: spec, Force: force})
		if status.Code(err) == codes.Aborted && attempt < maxUpdateAttempts {
			continue
		}
		if err != nil {
			return nil, err
		}
		return up.GetNode(), nil
	}
}

// maxUpdateAttempts bounds how often an edit is applied again after the
// object changed under it.
const maxUpdateAttempts = 5

type nodeUpdateFlags struct {
	availability string
	labelAdd     []string
	labelRm      []string
	role         string
}

func newNodeUpdateCmd(g *globals) *cobra.Command {
	f := &nodeUpdateFlags{}
	cmd := &cobra.Command{
		Use:   "update [--availability active|pause|drain] [--label-add k=v] [--label-rm k] NODE",
		Short: "Change a node's availability, labels or role",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := g.updateNode(cmd.Context(), args[0], false, func(s *shoalv1.NodeSpec) error {
				if f.availability != "" {
					v, ok := shoalv1.NodeAvailability_value["NODE_AVAILABILITY_"+strings.ToUpper(f.availability)]
					if !ok {
						return fmt.Errorf("--availability %q: use active, pause or drain", f.availability)
					}
					s.Availability = shoalv1.NodeAvailability(v)
				}
				if f.role != "" {
					v, ok := shoalv1.NodeRole_value["NODE_ROLE_"+strings.ToUpper(f.role)]
					if !ok {
						return fmt.Errorf("--role %q: use manager or worker", f.role)
					}
					s.DesiredRole = shoalv1.NodeRole(v)
				}
				labels, err := applyKV(s.GetLabels(), f.labelAdd, f.labelRm, "--label-add")
				if err != nil {
					return err
				}
				s.Labels = labels
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&f.availability, "availability", "", "active, pause or drain")
	cmd.Flags().StringVar(&f.role, "role", "", "manager or worker")
	cmd.Flags().StringArrayVar(&f.labelAdd, "label-add", nil, "add or change a label (key=value)")
	cmd.Flags().StringArrayVar(&f.labelRm, "label-rm", nil, "remove a label")
	return cmd
}

func newNodeRoleCmd(g *globals, verb string, role shoalv1.NodeRole) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   verb + " NODE [NODE...]",
		Short: map[string]string{"promote": "Make nodes managers", "demote": "Make managers workers"}[verb],
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, ref := range args {
				n, err := g.updateNode(cmd.Context(), ref, force, func(s *shoalv1.NodeSpec) error {
					s.DesiredRole = role
					return nil
				})
				if err != nil {
					return err
				}
				what := "manager"
				if role == shoalv1.NodeRole_NODE_ROLE_WORKER {
					what = "worker"
				}
				fmt.Fprintf(g.out, "Node %s %sd to a %s in the swarm.\n", n.GetId(), verb, what)
			}
			return nil
		},
	}
	if role == shoalv1.NodeRole_NODE_ROLE_WORKER {
		cmd.Flags().BoolVarP(&force, "force", "f", false, "demote even if the managers lose their quorum")
	}
	return cmd
}

func newNodeRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NODE [NODE...]",
		Aliases: []string{"remove"},
		Short:   "Remove nodes from the cluster",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			for _, ref := range args {
				if _, err := c.RemoveNode(cmd.Context(), &shoalv1.RemoveNodeRequest{NodeId: ref, Force: force}); err != nil {
					return err
				}
				fmt.Fprintln(g.out, ref)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove a node that is not down, or a manager")
	return cmd
}
