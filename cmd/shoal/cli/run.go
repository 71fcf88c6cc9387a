package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-run/shoal/internal/ctrspec"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// runtimeClient returns a RuntimeService client on the local socket.
func (g *globals) runtimeClient() (shoalv1.RuntimeServiceClient, func(), error) {
	if strings.HasPrefix(g.host, "tcp://") {
		return nil, nil, errors.New("containers and images are local to a node: use its unix socket, not a tcp:// host")
	}
	c, err := g.dial()
	if err != nil {
		return nil, nil, err
	}
	return shoalv1.NewRuntimeServiceClient(c), func() { c.Close() }, nil
}

type runFlags struct {
	rm, detach, readOnly, init    bool
	tty                           bool
	capAdd, capDrop, sysctls      []string
	ulimits, dns, dnsSearch       []string
	dnsOptions, addHosts, groups  []string
	logDriver                     string
	logOpts                       []string
	name, workdir, user, hostname string
	entrypoint, memory, cpus      string
	network, stopSignal           string
	pidsLimit                     int64
	stopTimeout                   int
	env, envFiles                 []string
	volumes, mounts, tmpfs        []string // mounts.go
}

func newRunCmd(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Run a one-off container on this node",
		Long: "Run a container through the local daemon, stream its output and exit with its exit code\n" +
			"(128+N when a signal N ended it), like `docker run`. The image is pulled if it is not here.",
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config(cmd, args)
			if err != nil {
				return err
			}
			rc, done, err := g.runtimeClient()
			if err != nil {
				return err
			}
			defer done()
			return g.run(cmd.Context(), rc, cfg, f)
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	fs.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fs.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the container ID")
	fs.StringVar(&f.name, "name", "", "container name")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to pass this shell's value)")
	fs.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&f.user, "user", "u", "", "USER[:GROUP] to run as (names from the image's /etc/passwd, or numbers)")
	fs.StringVar(&f.hostname, "hostname", "", "container hostname")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint")
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit (e.g. 64m)")
	fs.StringVar(&f.cpus, "cpus", "", "CPU limit (e.g. 0.5)")
	fs.Int64Var(&f.pidsLimit, "pids-limit", 0, "maximum number of processes (0: unlimited)")
	fs.BoolVar(&f.readOnly, "read-only", false, "mount the root filesystem read-only")
	fs.BoolVar(&f.init, "init", false, "run a minimal init as PID 1 that forwards signals and reaps zombies")
	fs.StringVar(&f.network, "network", "none", "none (loopback only), host, or an attachable overlay network of the node's swarm")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "signal to stop the container (default: the image's, or SIGTERM)")
	fs.IntVar(&f.stopTimeout, "stop-timeout", 10, "seconds to wait after the stop signal before killing")
	fs.StringArrayVarP(&f.volumes, "volume", "v", nil, "bind mount a volume: [SOURCE:]TARGET[:ro|rw|nocopy|PROPAGATION] (an absolute SOURCE is a host path, another a named volume)")
	fs.StringArrayVar(&f.mounts, "mount", nil, "attach a filesystem mount: type=bind|volume|tmpfs,source=...,target=...[,readonly]...")
	fs.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs: TARGET[:size=64m,mode=1777]")
	fs.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-TTY")
	fs.StringArrayVar(&f.capAdd, "cap-add", nil, "add Linux capabilities")
	fs.StringArrayVar(&f.capDrop, "cap-drop", nil, "drop Linux capabilities")
	fs.StringArrayVar(&f.sysctls, "sysctl", nil, "sysctl options KEY=VALUE (namespaced ones only)")
	fs.StringArrayVar(&f.ulimits, "ulimit", nil, "ulimit options NAME=SOFT[:HARD]")
	fs.StringArrayVar(&f.dns, "dns", nil, "set custom DNS servers")
	fs.StringArrayVar(&f.dnsSearch, "dns-search", nil, "set custom DNS search domains")
	fs.StringArrayVar(&f.dnsOptions, "dns-option", nil, "set DNS options")
	fs.StringArrayVar(&f.addHosts, "add-host", nil, "add a custom host-to-IP mapping (host:ip)")
	fs.StringArrayVar(&f.groups, "group-add", nil, "add additional groups to join")
	fs.StringVar(&f.logDriver, "log-driver", "", "logging driver (json-file, the default and only one)")
	fs.StringArrayVar(&f.logOpts, "log-opt", nil, "log driver options: max-size=SIZE, max-file=N")
	return cmd
}

func (f *runFlags) config(cmd *cobra.Command, args []string) (*shoalv1.ContainerConfig, error) {
	cfg := &shoalv1.ContainerConfig{
		Name: f.name, Image: args[0], Cmd: args[1:], WorkingDir: f.workdir, User: f.user, Hostname: f.hostname,
		PidsLimit: f.pidsLimit, ReadOnly: f.readOnly, Init: f.init, StopSignal: f.stopSignal,
		// Attached, the CLI removes the container after reading its exit.
		AutoRemove:  f.rm && f.detach,
		StopTimeout: durationpb.New(time.Duration(f.stopTimeout) * time.Second),
	}
	switch f.network {
	case "":
		return nil, fmt.Errorf("--network: is empty; use none, host or the name of an attachable overlay network")
	default:
		cfg.Network = f.network // none, host, or an overlay network the daemon asks the cluster for
	}
	if cmd.Flags().Changed("entrypoint") {
		// One executable, as docker run's; "" clears the image's.
		cfg.EntrypointSet = true
		if f.entrypoint != "" {
			cfg.Entrypoint = []string{f.entrypoint}
		}
	}
	if err := f.containerSpec(cfg); err != nil {
		return nil, err
	}
	var err error
	if f.memory != "" {
		if cfg.MemoryBytes, err = parseBytes(f.memory); err != nil {
			return nil, fmt.Errorf("--memory: %w", err)
		}
	}
	if f.cpus != "" {
		if cfg.NanoCpus, err = parseCPUs(f.cpus); err != nil {
			return nil, fmt.Errorf("--cpus: %w", err)
		}
	}
	for _, group := range []struct {
		flag  string
		in    []string
		parse func(string) (*shoalv1.Mount, error)
	}{{"--volume", f.volumes, parseVolumeFlag}, {"--mount", f.mounts, parseMount}, {"--tmpfs", f.tmpfs, parseTmpfsFlag}} {
		ms, err := parseMounts(group.flag, group.in, group.parse)
		if err != nil {
			return nil, err
		}
		cfg.Mounts = append(cfg.Mounts, ms...)
	}
	for _, path := range f.envFiles {
		vars, err := readEnvFile(path)
		if err != nil {
			return nil, err
		}
		cfg.Env = append(cfg.Env, vars...)
	}
	for _, e := range f.env {
		if !strings.Contains(e, "=") {
			v, ok := os.LookupEnv(e)
			if !ok {
				continue
			}
			e += "=" + v
		}
		cfg.Env = append(cfg.Env, e)
	}
	return cfg, nil
}

// containerSpec sets the rest of docker run's container surface.
func (f *runFlags) containerSpec(cfg *shoalv1.ContainerConfig) error {
	cfg.Tty, cfg.CapAdd, cfg.CapDrop, cfg.Groups = f.tty, normalizeCaps(f.capAdd), normalizeCaps(f.capDrop), f.groups
	var err error
	if cfg.Sysctls, err = applyKV(nil, f.sysctls, nil, "--sysctl"); err != nil {
		return err
	}
	ul, err := updateUlimits(nil, &listFlag{create: f.ulimits}, true)
	if err != nil {
		return err
	}
	cfg.Ulimits = ul
	for _, s := range f.dns {
		if net.ParseIP(s) == nil {
			return fmt.Errorf("--dns: IP address is not correctly formatted: %s", s)
		}
	}
	if len(f.dns)+len(f.dnsSearch)+len(f.dnsOptions) > 0 {
		cfg.DnsConfig = &shoalv1.DNSConfig{Nameservers: f.dns, Search: f.dnsSearch, Options: f.dnsOptions}
	}
	for _, h := range f.addHosts {
		line, err := hostLine(h)
		if err != nil {
			return fmt.Errorf("--add-host: %w", err)
		}
		cfg.Hosts = append(cfg.Hosts, line)
	}
	opts, err := applyKV(nil, f.logOpts, nil, "--log-opt")
	if err != nil {
		return err
	}
	size, files, err := ctrspec.LogOptions(f.logDriver, opts)
	if err != nil {
		return err
	}
	cfg.LogMaxSize, cfg.LogMaxFiles = size, int32(files)
	return nil
}

// readEnvFile reads KEY=VALUE lines, skipping blanks and # comments.
func readEnvFile(path string) ([]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %w", err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, hasValue := strings.Cut(line, "=")
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("--env-file %s line %d: %q is not KEY=VALUE", path, n, line)
		}
		if !hasValue {
			v, ok := os.LookupEnv(k)
			if !ok {
				continue
			}
			line = k + "=" + v
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

func (g *globals) run(ctx context.Context, rc shoalv1.RuntimeServiceClient, cfg *shoalv1.ContainerConfig, f *runFlags) error {
	created, err := rc.CreateContainer(ctx, &shoalv1.CreateContainerRequest{Config: cfg})
	if status.Code(err) == codes.NotFound && strings.Contains(status.Convert(err).Message(), "image") {
		fmt.Fprintf(g.errOut, "Unable to find image '%s' locally\n", cfg.GetImage())
		if _, err := g.pull(ctx, rc, cfg.GetImage(), g.errOut); err != nil {
			return err
		}
		created, err = rc.CreateContainer(ctx, &shoalv1.CreateContainerRequest{Config: cfg})
	}
	if err != nil {
		return err
	}
	id := created.GetContainer().GetId()
	if f.detach {
		if _, err := rc.StartContainer(ctx, &shoalv1.StartContainerRequest{Id: id}); err != nil {
			return err
		}
		fmt.Fprintln(g.out, id)
		return nil
	}
	// Forward Ctrl-C and termination to the container, like docker's
	// sig-proxy.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			_, _ = rc.KillContainer(context.Background(), &shoalv1.KillContainerRequest{Id: id, Signal: s.String()})
		}
	}()
	startErr := func() error {
		_, err := rc.StartContainer(ctx, &shoalv1.StartContainerRequest{Id: id})
		return err
	}()
	logCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := g.streamLogs(logCtx, rc, id, true); err != nil && startErr == nil {
		return err
	}
	w, err := rc.WaitContainer(context.Background(), &shoalv1.WaitContainerRequest{Id: id})
	if err != nil {
		if startErr != nil {
			return startErr
		}
		return err
	}
	c := w.GetContainer()
	if f.rm {
		_, _ = rc.RemoveContainer(context.Background(), &shoalv1.RemoveContainerRequest{Id: id, Force: true})
	}
	if startErr != nil {
		fmt.Fprintln(g.errOut, "Error:", cleanError(startErr))
	}
	if c.GetOomKilled() {
		fmt.Fprintln(g.errOut, "the container was killed for running out of memory (OOMKilled)")
	}
	if code := c.GetExitCode(); code != 0 {
		return exitError{code: int(code)}
	}
	return nil
}

func (g *globals) streamLogs(ctx context.Context, rc shoalv1.RuntimeServiceClient, id string, follow bool) error {
	stream, err := rc.ContainerLogs(ctx, &shoalv1.ContainerLogsRequest{Id: id, Follow: follow})
	if err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		out := g.out
		if m.GetStream() == "stderr" {
			out = g.errOut
		}
		if _, err := out.Write(m.GetLine()); err != nil {
			return err
		}
	}
}
