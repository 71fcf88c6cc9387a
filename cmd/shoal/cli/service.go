package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/shlex"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func newServiceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Manage services"}
	cmd.AddCommand(newServiceCreateCmd(g), newServiceLsCmd(g), newServiceInspectCmd(g), newServicePsCmd(g),
		newServiceUpdateCmd(g), newServiceRollbackCmd(g), newServiceScaleCmd(g), newServiceRmCmd(g), newServiceLogsCmd(g))
	return cmd
}

// specFlags are the flags shared by service create and update; on update
// only the flags given change the spec.
type specFlags struct {
	replicas                                 int64
	mode, entrypoint, workdir, user, host    string
	reserveCPU, reserveMem, limitCPU, limMem string
	restartCond                              string
	restartDelay, restartWindow, stopGrace   time.Duration
	restartMax                               int64
	maxConcurrent                            int64
	maxPerNode                               int64
	endpointMode, strategy                   string
	env, labels, containerLabels             []string
	constraints, prefs, publish, networks    []string
	secrets, configs                         []string       // service_secrets.go
	deploy                                   deployFlags    // health, --update-*, --rollback-*
	container                                containerFlags // service_container.go: mounts and the rest of the container spec
	image                                    imageFlags     // service_image.go: digest pinning, registry auth
}

func (f *specFlags) register(fs *pflag.FlagSet, create bool) {
	fs.Int64Var(&f.replicas, "replicas", 1, "number of tasks (replicated mode), or of completions (replicated-job mode)")
	fs.Int64Var(&f.maxConcurrent, "max-concurrent", 0, "number of job tasks to run concurrently (replicated-job mode; default equal to --replicas)")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&f.user, "user", "u", "", "USER[:GROUP] to run as")
	fs.StringVar(&f.host, "hostname", "", "container hostname")
	fs.StringVar(&f.reserveCPU, "reserve-cpu", "", "CPUs to reserve (e.g. 0.5)")
	fs.StringVar(&f.reserveMem, "reserve-memory", "", "memory to reserve (e.g. 256m)")
	fs.StringVar(&f.limitCPU, "limit-cpu", "", "CPU limit (e.g. 1.5)")
	fs.StringVar(&f.limMem, "limit-memory", "", "memory limit (e.g. 512m)")
	fs.StringVar(&f.restartCond, "restart-condition", "any", "restart when: none, on-failure or any")
	fs.DurationVar(&f.restartDelay, "restart-delay", 0, "delay before the first restart (backs off exponentially)")
	fs.Int64Var(&f.restartMax, "restart-max-attempts", 0, "restarts allowed within the window (0: unlimited)")
	fs.DurationVar(&f.restartWindow, "restart-window", 0, "window for counting restarts")
	fs.DurationVar(&f.stopGrace, "stop-grace-period", 10*time.Second, "time to wait after SIGTERM before SIGKILL")
	fs.Int64Var(&f.maxPerNode, "replicas-max-per-node", 0, "maximum tasks per node (0: unlimited)")
	fs.StringVar(&f.endpointMode, "endpoint-mode", "vip", "vip or dnsrr")
	fs.StringVar(&f.strategy, "placement-strategy", "spread", "spread (even over nodes) or binpack (fill nodes first)")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image (shell-quoted words; \"\" for none)")
	f.deploy.register(fs, create)
	f.container.register(fs, create)
	f.image.register(fs, create)
	if create {
		fs.StringVar(&f.mode, "mode", "replicated", "replicated, global, replicated-job or global-job")
		fs.StringArrayVarP(&f.env, "env", "e", nil, "environment variable KEY=VALUE")
		fs.StringArrayVarP(&f.labels, "label", "l", nil, "service label key=value")
		fs.StringArrayVar(&f.containerLabels, "container-label", nil, "container label key=value")
		fs.StringArrayVar(&f.constraints, "constraint", nil, "placement constraint (e.g. node.role==worker)")
		fs.StringArrayVar(&f.prefs, "placement-pref", nil, "placement preference (spread=node.labels.zone)")
		fs.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a port: 8080:80 or published=8080,target=80[,protocol=udp][,mode=host]")
		fs.StringArrayVar(&f.networks, "network", nil, "attach to a network")
		fs.StringArrayVar(&f.secrets, "secret", nil, "Specify secrets to expose to the service: NAME or source=NAME[,target=PATH][,uid=0][,gid=0][,mode=0444]")
		fs.StringArrayVar(&f.container.mounts, "mount", nil, "Attach a filesystem mount to the service: type=bind|volume|tmpfs,source=...,target=...[,readonly][,volume-nocopy][,volume-label=k=v][,volume-opt=k=v][,tmpfs-size=...][,tmpfs-mode=...][,bind-propagation=...]")
		fs.StringArrayVar(&f.configs, "config", nil, "Specify configurations to expose to the service: NAME or source=NAME[,target=/PATH][,uid=0][,gid=0][,mode=0444]")
	}
}

// apply writes the flags that were given (all of them on create) into spec.
func (f *specFlags) apply(fs *pflag.FlagSet, spec *shoalv1.ServiceSpec, create bool) error {
	changed := func(name string) bool { return create || fs.Changed(name) }
	if spec.Task == nil {
		spec.Task = &shoalv1.TaskSpec{}
	}
	t := spec.Task
	if t.Container == nil {
		t.Container = &shoalv1.ContainerSpec{}
	}
	c := t.Container
	if err := f.applyMode(fs, spec, create); err != nil { // service_jobs.go
		return err
	}
	if fs.Changed("entrypoint") {
		words, err := parseEntrypoint(f.entrypoint)
		if err != nil {
			return err
		}
		c.Command, c.CommandSet = words, true
	}
	if changed("workdir") {
		c.Dir = f.workdir
	}
	if changed("user") {
		c.User = f.user
	}
	if changed("hostname") {
		c.Hostname = f.host
	}
	if changed("stop-grace-period") {
		c.StopGracePeriod = durationpb.New(f.stopGrace)
	}
	if err := f.container.apply(fs, t, create); err != nil {
		return err
	}
	if t.Resources == nil {
		t.Resources = &shoalv1.ResourceRequirements{}
	}
	if t.Resources.Limits == nil {
		t.Resources.Limits = &shoalv1.Resources{}
	}
	if t.Resources.Reservations == nil {
		t.Resources.Reservations = &shoalv1.Resources{}
	}
	for _, r := range []struct {
		flag, val string
		dst       *int64
		parse     func(string) (int64, error)
	}{
		{"reserve-cpu", f.reserveCPU, &t.Resources.Reservations.NanoCpus, parseCPUs},
		{"limit-cpu", f.limitCPU, &t.Resources.Limits.NanoCpus, parseCPUs},
		{"reserve-memory", f.reserveMem, &t.Resources.Reservations.MemoryBytes, parseBytes},
		{"limit-memory", f.limMem, &t.Resources.Limits.MemoryBytes, parseBytes},
	} {
		if !fs.Changed(r.flag) {
			continue
		}
		v, err := r.parse(r.val)
		if err != nil {
			return fmt.Errorf("--%s: %w", r.flag, err)
		}
		*r.dst = v
	}
	if t.Restart == nil {
		t.Restart = &shoalv1.RestartPolicy{}
	}
	if changed("restart-condition") {
		cond, err := parseRestartCondition(f.restartCond)
		if err != nil {
			return err
		}
		t.Restart.Condition = cond
	}
	if fs.Changed("restart-delay") {
		t.Restart.Delay = durationpb.New(f.restartDelay)
	}
	if fs.Changed("restart-window") {
		t.Restart.Window = durationpb.New(f.restartWindow)
	}
	if changed("restart-max-attempts") {
		t.Restart.MaxAttempts = f.restartMax
	}
	if err := checkJobFlags(fs, spec, create); err != nil {
		return err
	}
	if t.Placement == nil {
		t.Placement = &shoalv1.Placement{}
	}
	if changed("replicas-max-per-node") {
		t.Placement.MaxReplicas = f.maxPerNode
	}
	if changed("placement-strategy") {
		switch f.strategy {
		case "spread":
			t.Placement.Strategy = shoalv1.PlacementStrategy_PLACEMENT_STRATEGY_SPREAD
		case "binpack":
			t.Placement.Strategy = shoalv1.PlacementStrategy_PLACEMENT_STRATEGY_BINPACK
		default:
			return fmt.Errorf("--placement-strategy %q: use spread or binpack", f.strategy)
		}
	}
	if spec.Endpoint == nil {
		spec.Endpoint = &shoalv1.EndpointSpec{}
	}
	if changed("endpoint-mode") {
		switch f.endpointMode {
		case "vip":
			spec.Endpoint.Mode = shoalv1.EndpointMode_ENDPOINT_MODE_VIP
		case "dnsrr":
			spec.Endpoint.Mode = shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR
		default:
			return fmt.Errorf("--endpoint-mode %q: use vip or dnsrr", f.endpointMode)
		}
	}
	return f.deploy.apply(fs, spec, create)
}

func setPrefs(p *shoalv1.Placement, prefs []string) error {
	var err error
	p.Preferences, err = parsePrefs("--placement-pref", prefs)
	return err
}

type serviceCreateFlags struct {
	specFlags
	name   string
	detach bool
	quiet  bool
}

func newServiceCreateCmd(g *globals) *cobra.Command {
	f := &serviceCreateFlags{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a service",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := &shoalv1.ServiceSpec{Name: f.name, Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: args[0], Args: args[1:]}}}
			if err := f.apply(cmd.Flags(), spec, true); err != nil {
				return err
			}
			c := spec.Task.Container
			c.Env = append(c.Env, f.env...) // after --env-file's, as docker's
			var err error
			if spec.Labels, err = applyKV(nil, f.labels, nil, "--label"); err != nil {
				return err
			}
			if c.Labels, err = applyKV(nil, f.containerLabels, nil, "--container-label"); err != nil {
				return err
			}
			spec.Task.Placement.Constraints = f.constraints
			if err := setPrefs(spec.Task.Placement, f.prefs); err != nil {
				return err
			}
			if spec.Endpoint.Ports, err = parsePortsFlag("--publish", f.publish); err != nil {
				return err
			}
			for _, n := range f.networks {
				spec.Networks = append(spec.Networks, &shoalv1.NetworkAttachment{Target: n})
			}
			if c.Secrets, err = secretRefs.parse("--secret", f.secrets); err != nil {
				return err
			}
			if c.Configs, err = configRefs.parse("--config", f.configs); err != nil {
				return err
			}
			if spec.Name == "" {
				spec.Name = randomName()
			}
			cl, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			if err := f.image.prepare(cmd.Context(), cl, spec, true, g.errOut); err != nil { // service_image.go
				return err
			}
			resp, err := cl.CreateService(cmd.Context(), &shoalv1.CreateServiceRequest{Spec: spec})
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, resp.GetService().GetId())
			if f.detach {
				return nil
			}
			return g.waitConverged(cmd.Context(), cl, resp.GetService().GetId(), f.quiet, nil)
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	f.register(fs, true)
	fs.StringVar(&f.name, "name", "", "service name")
	fs.BoolVarP(&f.detach, "detach", "d", false, "return at once instead of waiting for the service to converge")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "suppress progress output")
	return cmd
}

// randomName names an unnamed service, like docker's adjective_surname.
func randomName() string {
	adj := []string{"brave", "calm", "eager", "keen", "quick", "sharp", "swift", "wise"}
	fish := []string{"herring", "mackerel", "sardine", "anchovy", "tuna", "cod", "perch", "trout"}
	n := time.Now().UnixNano()
	return adj[n%int64(len(adj))] + "_" + fish[(n/7)%int64(len(fish))]
}

func replicasColumn(s *shoalv1.Service, counts map[string][2]int, jobs map[string]jobCount) (mode, replicas string) {
	if isJobSpec(s.GetSpec()) {
		return jobColumn(s, jobs[s.GetId()])
	}
	c := counts[s.GetId()]
	if s.GetSpec().GetGlobal() != nil {
		return "global", fmt.Sprintf("%d/%d", c[0], c[1])
	}
	return "replicated", fmt.Sprintf("%d/%d", c[0], s.GetSpec().GetReplicated().GetReplicas())
}

// serviceColumns are service ls's template fields, docker's.
func serviceColumns(counts map[string][2]int, jobs map[string]jobCount) []column[*shoalv1.Service] {
	return []column[*shoalv1.Service]{
		{"ID", "ID", func(s *shoalv1.Service) any { return shortID(s.GetId()) }},
		{"Name", "NAME", func(s *shoalv1.Service) any { return s.GetSpec().GetName() }},
		{"Mode", "MODE", func(s *shoalv1.Service) any { m, _ := replicasColumn(s, counts, jobs); return m }},
		{"Replicas", "REPLICAS", func(s *shoalv1.Service) any { _, r := replicasColumn(s, counts, jobs); return r }},
		{"Image", "IMAGE", func(s *shoalv1.Service) any { return displayImage(s.GetSpec().GetTask().GetContainer().GetImage()) }},
		{"Ports", "PORTS", func(s *shoalv1.Service) any { return formatPorts(s.GetSpec().GetEndpoint().GetPorts()) }},
	}
}

func newServiceLsCmd(g *globals) *cobra.Command {
	return newLsCmd(g, lsCmd[*shoalv1.Service]{
		use: "ls", short: "List services", quietHelp: "print IDs only",
		filterHelp: "id, label, mode (replicated, global, replicated-job or global-job), name",
		list: func(ctx context.Context, c shoalv1.ControlServiceClient, filters []*shoalv1.Filter) ([]*shoalv1.Service, error) {
			resp, err := c.ListServices(ctx, &shoalv1.ListServicesRequest{Filters: filters})
			return resp.GetServices(), err
		},
		id:  (*shoalv1.Service).GetId,
		def: "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}",
		cols: func(ctx context.Context, c shoalv1.ControlServiceClient, svcs []*shoalv1.Service) ([]column[*shoalv1.Service], error) {
			counts, jobs, err := replicaCounts(ctx, c, svcs)
			return serviceColumns(counts, jobs), err
		},
	})
}

type serviceUpdateFlags struct {
	specFlags
	quiet                            bool
	image                            string
	args                             string
	envAdd, envRm, labelAdd, labelRm []string
	constraintAdd, constraintRm      []string
	publishAdd, publishRm            []string
	networkAdd, networkRm            []string
	secretAdd, secretRm              []string
	configAdd, configRm              []string
	prefAdd, prefRm                  []string
	detach                           bool
	force, rollback                  bool
}

func newServiceUpdateCmd(g *globals) *cobra.Command {
	f := &serviceUpdateFlags{}
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] SERVICE",
		Short: "Change a service",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.rollback {
				if err := rollbackAlone(cmd.LocalFlags()); err != nil {
					return err
				}
				return g.rollback(cmd.Context(), args[0], f.detach, f.quiet)
			}
			if err := f.deploy.check(cmd.Flags()); err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			cur, err := c.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: args[0]})
			if err != nil {
				return err
			}
			svc := cur.GetService()
			spec := proto.Clone(svc.GetSpec()).(*shoalv1.ServiceSpec)
			if err := f.apply(cmd.Flags(), spec, false); err != nil {
				return err
			}
			if f.force {
				spec.Task.ForceUpdate++ // docker's: every task replaced, even with no change
			}
			ct := spec.Task.Container
			if f.image != "" {
				ct.Image = f.image
			}
			if cmd.Flags().Changed("args") {
				if ct.Args, err = shlex.Split(f.args); err != nil {
					return fmt.Errorf("--args %q: %w", f.args, err)
				}
			}
			ct.Env = updateEnv(ct.Env, f.envAdd, f.envRm)
			if spec.Labels, err = applyKV(spec.Labels, f.labelAdd, f.labelRm, "--label-add"); err != nil {
				return err
			}
			spec.Task.Placement.Constraints = updateList(spec.Task.Placement.Constraints, f.constraintAdd, f.constraintRm)
			if err := updatePrefs(spec.Task.Placement, f.prefAdd, f.prefRm); err != nil {
				return err
			}
			if err := updatePorts(spec.Endpoint, f.publishAdd, f.publishRm); err != nil {
				return err
			}
			if spec.Networks, err = updateNetworks(spec.Networks, f.networkAdd, f.networkRm, func(ref string) (objectRef, error) {
				resp, err := c.GetNetwork(ctx, &shoalv1.GetNetworkRequest{NetworkId: ref})
				if err != nil {
					return objectRef{}, cleanError(err)
				}
				return objectRef{resp.GetNetwork().GetId(), resp.GetNetwork().GetSpec().GetName()}, nil
			}); err != nil {
				return err
			}
			if ct.Secrets, err = updateSecrets(ct.Secrets, f.secretAdd, f.secretRm, secretKind.resolver(ctx, c)); err != nil {
				return err
			}
			if ct.Configs, err = updateConfigs(ct.Configs, f.configAdd, f.configRm, configKind.resolver(ctx, c)); err != nil {
				return err
			}
			if err := f.specFlags.image.prepare(ctx, c, spec, f.image != "", g.errOut); err != nil { // service_image.go
				return err
			}
			if _, err := c.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: svc.GetId(), Version: svc.GetMeta().GetVersion(), Spec: spec}); err != nil {
				return err
			}
			fmt.Fprintln(g.out, args[0])
			if f.detach {
				return nil
			}
			return g.waitConverged(ctx, c, args[0], f.quiet, svc.GetUpdateStatus())
		},
	}
	fs := cmd.Flags()
	f.register(fs, false)
	fs.BoolVar(&f.force, "force", false, "Force update even if no changes require it")
	fs.BoolVar(&f.rollback, "rollback", false, "Rollback to previous specification")
	fs.StringVar(&f.image, "image", "", "new image")
	fs.StringVar(&f.args, "args", "", "new command arguments")
	fs.StringArrayVar(&f.envAdd, "env-add", nil, "add or change an environment variable")
	fs.StringArrayVar(&f.envRm, "env-rm", nil, "remove an environment variable")
	fs.StringArrayVar(&f.labelAdd, "label-add", nil, "add or change a service label")
	fs.StringArrayVar(&f.labelRm, "label-rm", nil, "remove a service label")
	fs.StringArrayVar(&f.constraintAdd, "constraint-add", nil, "add a placement constraint")
	fs.StringArrayVar(&f.constraintRm, "constraint-rm", nil, "remove a placement constraint")
	fs.StringArrayVar(&f.prefAdd, "placement-pref-add", nil, "add a placement preference (spread=node.labels.<key>)")
	fs.StringArrayVar(&f.prefRm, "placement-pref-rm", nil, "remove a placement preference (spread=node.labels.<key>)")
	fs.StringArrayVar(&f.publishAdd, "publish-add", nil, "publish a port")
	fs.StringArrayVar(&f.publishRm, "publish-rm", nil, "unpublish a port by its target port: 80, 80/udp, 8080:80 or published=8080,target=80[,mode=host]")
	fs.StringArrayVar(&f.networkAdd, "network-add", nil, "attach a network (name or ID)")
	fs.StringArrayVar(&f.networkRm, "network-rm", nil, "detach a network (name or ID)")
	fs.StringArrayVar(&f.secretAdd, "secret-add", nil, "Add or update a secret on a service: NAME or source=NAME[,target=PATH][,uid=0][,gid=0][,mode=0444]")
	fs.StringArrayVar(&f.secretRm, "secret-rm", nil, "Remove a secret (name or ID)")
	fs.StringArrayVar(&f.configAdd, "config-add", nil, "Add or update a config file on a service: NAME or source=NAME[,target=/PATH][,uid=0][,gid=0][,mode=0444]")
	fs.StringArrayVar(&f.configRm, "config-rm", nil, "Remove a configuration file (name or ID)")
	fs.BoolVarP(&f.detach, "detach", "d", false, "return at once instead of waiting for the service to converge")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "suppress progress output")
	return cmd
}

func newServiceScaleCmd(g *globals) *cobra.Command {
	var detach bool
	cmd := &cobra.Command{
		Use:   "scale SERVICE=REPLICAS [SERVICE=REPLICAS...]",
		Short: "Change the number of replicas of services",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			scales, err := parseScales(args)
			if err != nil {
				return err
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			// Every service is read and checked before the first is
			// changed: a mistake in any argument changes nothing.
			svcs := make([]*shoalv1.Service, len(scales))
			for i, sc := range scales {
				cur, err := c.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: sc.name})
				if err != nil {
					return err
				}
				if sp := cur.GetService().GetSpec(); sp.GetReplicated() == nil && sp.GetReplicatedJob() == nil {
					mode := "global"
					if isJobSpec(sp) {
						mode = "a global job"
					}
					return fmt.Errorf("service %s is %s: scale can only be used with replicated or replicated-job mode", sc.name, mode)
				}
				svcs[i] = cur.GetService()
			}
			for i, sc := range scales {
				svc := svcs[i]
				spec := proto.Clone(svc.GetSpec()).(*shoalv1.ServiceSpec)
				if j := spec.GetReplicatedJob(); j != nil {
					j.TotalCompletions = sc.replicas // a new run of the job, as docker's
				} else {
					spec.GetReplicated().Replicas = sc.replicas
				}
				if _, err := c.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: svc.GetId(), Version: svc.GetMeta().GetVersion(), Spec: spec}); err != nil {
					return err
				}
				fmt.Fprintf(g.out, "%s scaled to %d\n", sc.name, sc.replicas)
			}
			for i, sc := range scales {
				if detach || ctx.Err() != nil {
					break
				}
				if err := g.waitConverged(ctx, c, sc.name, false, svcs[i].GetUpdateStatus()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return at once instead of waiting for the service to converge")
	return cmd
}

// serviceScale is one SERVICE=REPLICAS argument of service scale.
type serviceScale struct {
	name     string
	replicas int64
}

// parseScales reads service scale's arguments, refusing the first that
// is not SERVICE=REPLICAS with a whole number of replicas.
func parseScales(args []string) ([]serviceScale, error) {
	out := make([]serviceScale, 0, len(args))
	for _, a := range args {
		name, n, ok := strings.Cut(a, "=")
		if !ok || name == "" || n == "" {
			return nil, fmt.Errorf("%q: use SERVICE=REPLICAS, e.g. web=5", a)
		}
		reps, err := strconv.ParseUint(n, 10, 63)
		if err != nil {
			return nil, fmt.Errorf("%q: invalid replicas value %q: give a whole number of 0 or more, e.g. %s=5", a, n, name)
		}
		out = append(out, serviceScale{name: name, replicas: int64(reps)})
	}
	return out, nil
}

func newServiceRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm SERVICE [SERVICE...]",
		Aliases: []string{"remove"},
		Short:   "Remove services",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			for _, a := range args {
				if _, err := c.RemoveService(cmd.Context(), &shoalv1.RemoveServiceRequest{ServiceId: a}); err != nil {
					return err
				}
				fmt.Fprintln(g.out, a)
			}
			return nil
		},
	}
}
