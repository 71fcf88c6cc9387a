package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/stack"
)

// The stack commands are docker's: a compose file is loaded and
// converted here, in the client (package stack), and deployed through
// the control API as the objects it names, each labelled with the stack's
// namespace; ls, ps, services and rm find a stack's objects by that label.

func newStackCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "stack", Short: "Manage stacks: applications deployed from compose files"}
	cmd.AddCommand(newStackDeployCmd(g), newStackLsCmd(g), newStackPsCmd(g), newStackServicesCmd(g), newStackRmCmd(g), newStackConfigCmd(g))
	return cmd
}

// stackName is a compose project's name, which a stack's is: its
// objects are named NAME_key.
var stackName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

func checkStackName(ns string) error {
	if !stackName.MatchString(ns) {
		return fmt.Errorf("invalid stack name %q: use lower-case letters, digits, '_' and '-', starting with a letter or digit", ns)
	}
	return nil
}

// inStack is the filter of a stack's objects.
func inStack(ns string) []*shoalv1.Filter {
	return []*shoalv1.Filter{{Key: "label", Values: []string{stack.NamespaceLabel + "=" + ns}}}
}

// loadCompose reads and merges the -c files, with this process's
// environment for interpolation.
func (g *globals) loadCompose(ctx context.Context, files []string, ns string) (*types.Project, error) {
	if len(files) == 0 {
		return nil, errors.New("please specify a compose file (with --compose-file)")
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return stack.Load(ctx, stack.Options{Files: files, Stdin: g.stdin(), Env: env, Namespace: ns})
}

func newStackConfigCmd(g *globals) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "config [OPTIONS]",
		Short: "Outputs the final config file, after doing merges and interpolations",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.loadCompose(cmd.Context(), files, "")
			if err != nil {
				return err
			}
			out, err := stack.Config(p)
			if err != nil {
				return err
			}
			_, err = g.out.Write(out)
			return err
		},
	}
	cmd.Flags().StringSliceVarP(&files, "compose-file", "c", nil, "Path to a Compose file, or \"-\" to read from stdin")
	return cmd
}

type stackDeployFlags struct {
	files        []string
	prune        bool
	resolveImage string
	withAuth     bool
	detach       bool
	quiet        bool
}

func newStackDeployCmd(g *globals) *cobra.Command {
	f := &stackDeployFlags{resolveImage: "always"}
	cmd := &cobra.Command{
		Use:     "deploy [OPTIONS] STACK",
		Aliases: []string{"up"},
		Short:   "Deploy a new stack or update an existing stack",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := args[0]
			if err := checkStackName(ns); err != nil {
				return err
			}
			ctx := cmd.Context()
			p, err := g.loadCompose(ctx, f.files, ns)
			if err != nil {
				return err
			}
			st, err := stack.Convert(p, ns)
			if err != nil {
				return err
			}
			for _, w := range st.Warnings {
				fmt.Fprintln(g.errOut, w)
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			return g.deployStack(ctx, c, st, f)
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVarP(&f.files, "compose-file", "c", nil, "Path to a Compose file, or \"-\" to read from stdin")
	fs.BoolVar(&f.prune, "prune", false, "Prune services that are no longer referenced")
	fs.Var(choice{&f.resolveImage, []string{"always", "changed", "never"}}, "resolve-image", "Query the registry to resolve image digest and supported platforms (\"always\", \"changed\", \"never\")")
	fs.BoolVar(&f.withAuth, "with-registry-auth", false, "Send registry authentication details to Swarm agents")
	fs.BoolVarP(&f.detach, "detach", "d", false, "Exit immediately instead of waiting for the stack services to converge")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "Suppress progress output")
	return cmd
}

// stackState is what the cluster holds of a stack, and the objects a
// stack may name outside itself.
type stackState struct {
	services map[string]*shoalv1.Service // every service, by name
	networks map[string]*shoalv1.Network
	secrets  map[string]*shoalv1.Secret
	configs  map[string]*shoalv1.Config
}

func (g *globals) readStackState(ctx context.Context, c shoalv1.ControlServiceClient) (*stackState, error) {
	s := &stackState{services: map[string]*shoalv1.Service{}, networks: map[string]*shoalv1.Network{},
		secrets: map[string]*shoalv1.Secret{}, configs: map[string]*shoalv1.Config{}}
	svcs, err := c.ListServices(ctx, &shoalv1.ListServicesRequest{})
	if err != nil {
		return nil, err
	}
	for _, x := range svcs.GetServices() {
		s.services[x.GetSpec().GetName()] = x
	}
	nws, err := c.ListNetworks(ctx, &shoalv1.ListNetworksRequest{})
	if err != nil {
		return nil, err
	}
	for _, x := range nws.GetNetworks() {
		s.networks[x.GetSpec().GetName()] = x
	}
	secs, err := c.ListSecrets(ctx, &shoalv1.ListSecretsRequest{})
	if err != nil {
		return nil, err
	}
	for _, x := range secs.GetSecrets() {
		s.secrets[x.GetSpec().GetName()] = x
	}
	cfgs, err := c.ListConfigs(ctx, &shoalv1.ListConfigsRequest{})
	if err != nil {
		return nil, err
	}
	for _, x := range cfgs.GetConfigs() {
		s.configs[x.GetSpec().GetName()] = x
	}
	return s, nil
}

// checkStack is everything that can be known wrong before anything is
// created: external objects that do not exist, a stack object whose name
// another stack (or none) holds, a service spec the managers would
// refuse, a published port another service holds.
func checkStack(ctx context.Context, c shoalv1.ControlServiceClient, st *stack.Stack, cur *stackState) error {
	mine := func(labels map[string]string) bool { return labels[stack.NamespaceLabel] == st.Namespace }
	for _, n := range st.Networks {
		have, ok := cur.networks[n.Name]
		switch {
		case n.External && !ok:
			return fmt.Errorf("network %q is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed", n.Name)
		case !n.External && ok && !mine(have.GetSpec().GetLabels()):
			return fmt.Errorf("network %q already exists and is not of stack %s: remove it, or declare it external: true in the compose file", n.Name, st.Namespace)
		}
	}
	for _, kind := range []struct {
		word  string
		files []stack.File
		have  func(string) (map[string]string, bool)
	}{
		{"secret", st.Secrets, func(name string) (map[string]string, bool) {
			x, ok := cur.secrets[name]
			return x.GetSpec().GetLabels(), ok
		}},
		{"config", st.Configs, func(name string) (map[string]string, bool) {
			x, ok := cur.configs[name]
			return x.GetSpec().GetLabels(), ok
		}},
	} {
		for _, f := range kind.files {
			labels, ok := kind.have(f.Name)
			switch {
			case f.External && !ok:
				return fmt.Errorf("%s %q is declared as external, but could not be found: create it with `shoal %s create` before the stack is deployed", kind.word, f.Name, kind.word)
			case !f.External && ok && !mine(labels):
				return fmt.Errorf("%s %q already exists and is not of stack %s: remove it, or declare it external: true in the compose file", kind.word, f.Name, st.Namespace)
			}
		}
	}
	inStackNames := map[string]bool{}
	for _, spec := range st.Services {
		inStackNames[spec.GetName()] = true
	}
	for _, spec := range st.Services {
		if have, ok := cur.services[spec.GetName()]; ok && !mine(have.GetSpec().GetLabels()) {
			return fmt.Errorf("service %q already exists and is not of stack %s: remove it or rename the service in the compose file", spec.GetName(), st.Namespace)
		}
		if _, err := c.ValidateService(ctx, &shoalv1.ValidateServiceRequest{Spec: spec}); err != nil {
			return fmt.Errorf("service %s: %s", spec.GetName(), status.Convert(err).Message())
		}
		for _, p := range spec.GetEndpoint().GetPorts() {
			if p.GetPublishedPort() == 0 || p.GetPublishMode() == shoalv1.PublishMode_PUBLISH_MODE_HOST {
				continue
			}
			for name, other := range cur.services {
				if inStackNames[name] {
					continue
				}
				for _, q := range other.GetEndpoint().GetPorts() {
					if q.GetPublishedPort() == p.GetPublishedPort() && q.GetProtocol() == protocolOr(p.GetProtocol()) {
						return fmt.Errorf("service %s: port %d/%s is already published by service %s: free it or publish another port",
							spec.GetName(), p.GetPublishedPort(), portWord(q.GetProtocol()), name)
					}
				}
			}
		}
	}
	return nil
}

func protocolOr(p shoalv1.PortProtocol) shoalv1.PortProtocol {
	if p == shoalv1.PortProtocol_PORT_PROTOCOL_UNSPECIFIED {
		return shoalv1.PortProtocol_PORT_PROTOCOL_TCP
	}
	return p
}

func portWord(p shoalv1.PortProtocol) string {
	if p == shoalv1.PortProtocol_PORT_PROTOCOL_UDP {
		return "udp"
	}
	return "tcp"
}

// deployStack creates or updates the stack's objects, docker's way and in
// its words: networks, secrets and configs first, then the services;
// then, unless detached, it waits for each service to converge.
func (g *globals) deployStack(ctx context.Context, c shoalv1.ControlServiceClient, st *stack.Stack, f *stackDeployFlags) error {
	cur, err := g.readStackState(ctx, c)
	if err != nil {
		return err
	}
	if err := checkStack(ctx, c, st, cur); err != nil {
		return err
	}
	// Secrets and configs that exist are updated first: their data must
	// be the same (they are immutable), and a refusal then leaves
	// nothing created.
	for _, s := range st.Secrets {
		if have, ok := cur.secrets[s.Name]; ok && !s.External {
			if _, err := c.UpdateSecret(ctx, &shoalv1.UpdateSecretRequest{SecretId: have.GetId(), Version: have.GetMeta().GetVersion(),
				Spec: &shoalv1.SecretSpec{Name: s.Name, Labels: s.Labels, Data: s.Data}}); err != nil {
				return fmt.Errorf("failed to update secret %s: %s", s.Name, status.Convert(err).Message())
			}
		}
	}
	for _, s := range st.Configs {
		if have, ok := cur.configs[s.Name]; ok && !s.External {
			if _, err := c.UpdateConfig(ctx, &shoalv1.UpdateConfigRequest{ConfigId: have.GetId(), Version: have.GetMeta().GetVersion(),
				Spec: &shoalv1.ConfigSpec{Name: s.Name, Labels: s.Labels, Data: s.Data}}); err != nil {
				return fmt.Errorf("failed to update config %s: %s", s.Name, status.Convert(err).Message())
			}
		}
	}
	for _, n := range st.Networks {
		if _, ok := cur.networks[n.Name]; ok || n.External {
			continue
		}
		fmt.Fprintf(g.out, "Creating network %s\n", n.Name)
		if _, err := c.CreateNetwork(ctx, &shoalv1.CreateNetworkRequest{Spec: n.Spec}); err != nil {
			return fmt.Errorf("failed to create network %s: %s", n.Name, status.Convert(err).Message())
		}
	}
	for _, s := range st.Secrets {
		if _, ok := cur.secrets[s.Name]; ok || s.External {
			continue
		}
		fmt.Fprintf(g.out, "Creating secret %s\n", s.Name)
		if _, err := c.CreateSecret(ctx, &shoalv1.CreateSecretRequest{Spec: &shoalv1.SecretSpec{Name: s.Name, Labels: s.Labels, Data: s.Data}}); err != nil {
			return fmt.Errorf("failed to create secret %s: %s", s.Name, status.Convert(err).Message())
		}
	}
	for _, s := range st.Configs {
		if _, ok := cur.configs[s.Name]; ok || s.External {
			continue
		}
		fmt.Fprintf(g.out, "Creating config %s\n", s.Name)
		if _, err := c.CreateConfig(ctx, &shoalv1.CreateConfigRequest{Spec: &shoalv1.ConfigSpec{Name: s.Name, Labels: s.Labels, Data: s.Data}}); err != nil {
			return fmt.Errorf("failed to create config %s: %s", s.Name, status.Convert(err).Message())
		}
	}
	if f.prune {
		if err := g.pruneServices(ctx, c, st, cur); err != nil {
			return err
		}
	}
	var ids []string
	var priors []*shoalv1.UpdateStatus
	for _, spec := range st.Services {
		have := cur.services[spec.GetName()]
		id, err := g.deployService(ctx, c, spec, have, f)
		if err != nil {
			return err
		}
		ids, priors = append(ids, id), append(priors, have.GetUpdateStatus())
	}
	if f.detach {
		return nil
	}
	for i, id := range ids {
		if !f.quiet {
			fmt.Fprintf(g.out, "%s\n", st.Services[i].GetName())
		}
		if err := g.waitConverged(ctx, c, id, f.quiet, priors[i]); err != nil {
			return fmt.Errorf("service %s: %w", st.Services[i].GetName(), err)
		}
	}
	return nil
}

// deployService creates spec, or updates the service that holds its
// name; an update that changes nothing rolls no task (the managers
// compare the specs).
func (g *globals) deployService(ctx context.Context, c shoalv1.ControlServiceClient, spec *shoalv1.ServiceSpec, have *shoalv1.Service, f *stackDeployFlags) (string, error) {
	resolve := f.resolveImage == "always" || (f.resolveImage == "changed" && (have == nil || displayImage(have.GetSpec().GetTask().GetContainer().GetImage()) != spec.GetTask().GetContainer().GetImage()))
	img := &imageFlags{noResolve: !resolve, withAuth: f.withAuth}
	if err := img.prepare(ctx, c, spec, resolve, g.errOut); err != nil {
		return "", err
	}
	if have == nil {
		fmt.Fprintf(g.out, "Creating service %s\n", spec.GetName())
		resp, err := c.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec})
		if err != nil {
			return "", fmt.Errorf("failed to create service %s: %s", spec.GetName(), status.Convert(err).Message())
		}
		return resp.GetService().GetId(), nil
	}
	if !resolve {
		// Keep the digest the service runs when the tag is the same.
		if cur := have.GetSpec().GetTask().GetContainer().GetImage(); displayImage(cur) == spec.GetTask().GetContainer().GetImage() {
			spec.Task.Container.Image = cur
		}
	}
	fmt.Fprintf(g.out, "Updating service %s (id: %s)\n", spec.GetName(), have.GetId())
	if _, err := c.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: have.GetId(), Version: have.GetMeta().GetVersion(), Spec: spec}); err != nil {
		return "", fmt.Errorf("failed to update service %s: %s", spec.GetName(), status.Convert(err).Message())
	}
	return have.GetId(), nil
}

// pruneServices removes the stack's services the files no longer have.
func (g *globals) pruneServices(ctx context.Context, c shoalv1.ControlServiceClient, st *stack.Stack, cur *stackState) error {
	keep := map[string]bool{}
	for _, s := range st.Services {
		keep[s.GetName()] = true
	}
	var gone []string
	for name, s := range cur.services {
		if s.GetSpec().GetLabels()[stack.NamespaceLabel] == st.Namespace && !keep[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		fmt.Fprintf(g.out, "Removing service %s\n", name)
		if _, err := c.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: cur.services[name].GetId()}); err != nil {
			return fmt.Errorf("failed to remove service %s: %s", name, status.Convert(err).Message())
		}
	}
	return nil
}

// stackRow is a row of stack ls.
type stackRow struct {
	Name     string
	Services int
}

func newStackLsCmd(g *globals) *cobra.Command {
	f := &listFlags{}
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List stacks",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.ListServices(cmd.Context(), &shoalv1.ListServicesRequest{Filters: []*shoalv1.Filter{{Key: "label", Values: []string{stack.NamespaceLabel}}}})
			if err != nil {
				return err
			}
			count := map[string]int{}
			for _, s := range resp.GetServices() {
				count[s.GetSpec().GetLabels()[stack.NamespaceLabel]]++
			}
			rows := make([]stackRow, 0, len(count))
			for name, n := range count {
				rows = append(rows, stackRow{name, n})
			}
			sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
			if f.quiet {
				return printIDs(g.out, rows, func(r stackRow) string { return r.Name })
			}
			format := f.format
			if format == "json" {
				format = "{{json .}}"
			}
			return printRows(g.out, format, "table {{.Name}}\t{{.Services}}", []column[stackRow]{
				{"Name", "NAME", func(r stackRow) any { return r.Name }},
				{"Services", "SERVICES", func(r stackRow) any { return r.Services }},
			}, rows)
		},
	}
	f.register(cmd.Flags(), "print stack names only")
	return cmd
}

func newStackServicesCmd(g *globals) *cobra.Command {
	f := &listFlags{}
	var ff filterFlag
	cmd := &cobra.Command{
		Use:   "services [OPTIONS] STACK",
		Short: "List the services in the stack",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			filters, err := ff.parse()
			if err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			resp, err := c.ListServices(ctx, &shoalv1.ListServicesRequest{Filters: withStack(filters, args[0])})
			if err != nil {
				return err
			}
			svcs := ofStack(resp.GetServices(), args[0], func(s *shoalv1.Service) map[string]string { return s.GetSpec().GetLabels() })
			if len(svcs) == 0 {
				fmt.Fprintf(g.errOut, "Nothing found in stack: %s\n", args[0])
				return nil
			}
			return printList(g.out, f, svcs, (*shoalv1.Service).GetId, "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}",
				func() ([]column[*shoalv1.Service], error) {
					counts, jobs, err := replicaCounts(ctx, c, svcs)
					return serviceColumns(counts, jobs), err
				})
		},
	}
	f.register(cmd.Flags(), "Only display IDs")
	ff.register(cmd.Flags(), "id, label, mode (replicated, global, replicated-job or global-job), name")
	return cmd
}

func newStackPsCmd(g *globals) *cobra.Command {
	f := &taskPsFlags{}
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] STACK",
		Short: "List the tasks in the stack",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			filters, err := f.filter.parse()
			if err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			resp, err := c.ListTasks(ctx, &shoalv1.ListTasksRequest{Filters: withStack(filters, args[0])})
			if err != nil {
				return err
			}
			tasks := ofStack(resp.GetTasks(), args[0], func(t *shoalv1.Task) map[string]string { return t.GetSpec().GetContainer().GetLabels() })
			if len(tasks) == 0 {
				return fmt.Errorf("nothing found in stack: %s", args[0])
			}
			return g.printTasks(ctx, c, f, tasks)
		},
	}
	f.register(cmd.Flags(), "Only display task IDs")
	f.filter.register(cmd.Flags(), taskFilterHelp)
	cmd.Flags().BoolVar(&f.noTrunc, "no-trunc", false, "Do not truncate output")
	return cmd
}

// withStack adds the stack's label to the user's filters, unless they
// filter by label themselves: the values of one key are alternatives to
// the managers, so the stack's label is then checked on the answer
// (ofStack), which is always done.
func withStack(filters []*shoalv1.Filter, ns string) []*shoalv1.Filter {
	for _, f := range filters {
		if f.GetKey() == "label" {
			return filters
		}
	}
	return append(filters, inStack(ns)...)
}

// ofStack keeps the items labelled as the stack's.
func ofStack[T any](items []T, ns string, labels func(T) map[string]string) []T {
	var out []T
	for _, it := range items {
		if labels(it)[stack.NamespaceLabel] == ns {
			out = append(out, it)
		}
	}
	return out
}

type stackRmFlags struct {
	detach bool
}

func newStackRmCmd(g *globals) *cobra.Command {
	f := &stackRmFlags{}
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] STACK [STACK...]",
		Aliases: []string{"remove", "down"},
		Short:   "Remove one or more stacks",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, ns := range args {
				if err := checkStackName(ns); err != nil {
					return err
				}
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			failed := false
			for _, ns := range args {
				ok, err := g.removeStack(cmd.Context(), c, ns, f.detach)
				if err != nil {
					return err
				}
				if !ok {
					fmt.Fprintf(g.errOut, "Failed to remove some resources from stack: %s\n", ns)
					failed = true
				}
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&f.detach, "detach", "d", false, "Do not wait for the stack's tasks to be removed (its networks, secrets and configs are then removed only if no task holds them any more)")
	return cmd
}

// removeStack removes a stack's services, waits for their tasks to go
// (unless detach), then removes its secrets, configs and networks;
// external objects and volumes are never the stack's. It reports whether
// everything went.
func (g *globals) removeStack(ctx context.Context, c shoalv1.ControlServiceClient, ns string, detach bool) (bool, error) {
	filter := inStack(ns)
	svcs, err := c.ListServices(ctx, &shoalv1.ListServicesRequest{Filters: filter})
	if err != nil {
		return false, err
	}
	nws, err := c.ListNetworks(ctx, &shoalv1.ListNetworksRequest{Filters: filter})
	if err != nil {
		return false, err
	}
	secs, err := c.ListSecrets(ctx, &shoalv1.ListSecretsRequest{Filters: filter})
	if err != nil {
		return false, err
	}
	cfgs, err := c.ListConfigs(ctx, &shoalv1.ListConfigsRequest{Filters: filter})
	if err != nil {
		return false, err
	}
	if len(svcs.GetServices())+len(nws.GetNetworks())+len(secs.GetSecrets())+len(cfgs.GetConfigs()) == 0 {
		fmt.Fprintf(g.errOut, "Nothing found in stack: %s\n", ns)
		return true, nil
	}
	ok := true
	fail := func(kind, name string, err error) {
		fmt.Fprintf(g.errOut, "Failed to remove %s %s: %s\n", kind, name, status.Convert(err).Message())
		ok = false
	}
	sortByName(svcs.GetServices(), func(s *shoalv1.Service) string { return s.GetSpec().GetName() })
	var removed []string
	for _, s := range svcs.GetServices() {
		fmt.Fprintf(g.out, "Removing service %s\n", s.GetSpec().GetName())
		if _, err := c.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: s.GetId()}); err != nil && status.Code(err) != codes.NotFound {
			fail("service", s.GetSpec().GetName(), err)
			continue
		}
		removed = append(removed, s.GetId())
	}
	if !detach && len(removed) > 0 {
		if err := waitTasksGone(ctx, c, removed); err != nil {
			return false, err
		}
	}
	sortByName(secs.GetSecrets(), func(s *shoalv1.Secret) string { return s.GetSpec().GetName() })
	for _, s := range secs.GetSecrets() {
		fmt.Fprintf(g.out, "Removing secret %s\n", s.GetSpec().GetName())
		if _, err := c.RemoveSecret(ctx, &shoalv1.RemoveSecretRequest{SecretId: s.GetId()}); err != nil && status.Code(err) != codes.NotFound {
			fail("secret", s.GetSpec().GetName(), err)
		}
	}
	sortByName(cfgs.GetConfigs(), func(s *shoalv1.Config) string { return s.GetSpec().GetName() })
	for _, s := range cfgs.GetConfigs() {
		fmt.Fprintf(g.out, "Removing config %s\n", s.GetSpec().GetName())
		if _, err := c.RemoveConfig(ctx, &shoalv1.RemoveConfigRequest{ConfigId: s.GetId()}); err != nil && status.Code(err) != codes.NotFound {
			fail("config", s.GetSpec().GetName(), err)
		}
	}
	sortByName(nws.GetNetworks(), func(n *shoalv1.Network) string { return n.GetSpec().GetName() })
	for _, n := range nws.GetNetworks() {
		fmt.Fprintf(g.out, "Removing network %s\n", n.GetSpec().GetName())
		if _, err := c.RemoveNetwork(ctx, &shoalv1.RemoveNetworkRequest{NetworkId: n.GetId()}); err != nil && status.Code(err) != codes.NotFound {
			fail("network", n.GetSpec().GetName(), err)
		}
	}
	return ok, nil
}

func sortByName[T any](items []T, name func(T) string) {
	sort.Slice(items, func(i, j int) bool { return name(items[i]) < name(items[j]) })
}

// waitTasksGone waits until no task of the removed services is left in
// the store: their containers stopped and their addresses released.
func waitTasksGone(ctx context.Context, c shoalv1.ControlServiceClient, services []string) error {
	gone := map[string]bool{}
	for _, id := range services {
		gone[id] = true
	}
	tick := time.NewTicker(progressPoll)
	defer tick.Stop()
	for {
		resp, err := c.ListTasks(ctx, &shoalv1.ListTasksRequest{})
		if err != nil {
			return err
		}
		left := 0
		for _, t := range resp.GetTasks() {
			if gone[t.GetServiceId()] {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while %d tasks of the stack were still shutting down: %w", left, ctx.Err())
		case <-tick.C:
		}
	}
}
