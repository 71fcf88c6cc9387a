// Command dockerapi measures Shoal's Docker Engine API against Shoal's own
// CLI and gRPC API, side by side in one run on a 1-manager + 1-worker
// cluster on loopback:
//
//   - converge: `docker service create --replicas N IMAGE` (the docker
//     CLI at /usr/local/bin/docker on the node's Docker API socket, which
//     waits until the service converged) against `shoal service create`
//     (which waits the same way), -rounds times each, alternating; the
//     wall time of each command, the service removed between rounds;
//   - list: with -services services (0 replicas each) in the cluster, the
//     latency of GET /services?status=true on the Docker API socket
//     against the gRPC ListServices it makes (the baseline), -calls
//     calls each, alternating; and the wall time of `docker service ls`
//     against `shoal service ls`, -rounds each.
//
// It needs root (it runs containers).
//
//	go run ./tests/bench/dockerapi [-replicas 3] [-rounds 5] [-services 1000] [-calls 50] [-json]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

const dockerCLI = "/usr/local/bin/docker"

type config struct {
	Replicas int    `json:"replicas"`
	Rounds   int    `json:"rounds"`
	Services int    `json:"services"`
	Calls    int    `json:"calls"`
	LogLevel string `json:"log_level"`
	JSON     bool   `json:"-"`
	Verbose  bool   `json:"-"`
}

// pair is one measurement through the Docker API and its baseline.
type pair struct {
	Docker   benchkit.Summary `json:"docker"`
	Baseline benchkit.Summary `json:"baseline"`
	// Ratio is the Docker API's median over the baseline's.
	Ratio float64 `json:"ratio"`
}

type result struct {
	Machine benchkit.Machine `json:"machine"`
	Config  config           `json:"config"`
	// Converge: docker service create against shoal service create,
	// each until converged.
	Converge pair `json:"converge"`
	// ListCall: GET /services?status=true against gRPC ListServices
	// (and ListTasks, which status=true also reads).
	ListCall pair `json:"list_call"`
	// ListCLI: docker service ls against shoal service ls.
	ListCLI pair `json:"list_cli"`
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Replicas, "replicas", 3, "replicas of each created service")
	flag.IntVar(&cfg.Rounds, "rounds", 5, "creates (and CLI lists) of each kind, alternating")
	flag.IntVar(&cfg.Services, "services", 1000, "services in the cluster for the list measurements")
	flag.IntVar(&cfg.Calls, "calls", 50, "API calls of each kind for the list latency")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "daemon log level")
	flag.BoolVar(&cfg.JSON, "json", false, "print the result as JSON on stdout")
	flag.BoolVar(&cfg.Verbose, "v", false, "log harness messages to stderr")
	flag.Parse()
	switch {
	case os.Geteuid() != 0:
		usage("it runs containers and needs root")
	case cfg.Replicas < 1 || cfg.Replicas > 20:
		usage("-replicas must be 1..20")
	case cfg.Rounds < 1 || cfg.Rounds > 50:
		usage("-rounds must be 1..50")
	case cfg.Services < 1 || cfg.Services > 20000:
		usage("-services must be 1..20000")
	case cfg.Calls < 1 || cfg.Calls > 10000:
		usage("-calls must be 1..10000")
	}
	if _, err := os.Stat(dockerCLI); err != nil {
		usage("the docker CLI is missing: " + err.Error())
	}
	benchkit.Run(cfg.Verbose, cfg.JSON, func(tb *benchkit.TB) result { return run(tb, cfg) }, printSummary)
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "dockerapi:", msg)
	os.Exit(2)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "dockerapi: "+format+"\n", args...)
}

func timed(tb *benchkit.TB, name string, args []string, env ...string) time.Duration {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		tb.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return d
}

func run(tb *benchkit.TB, cfg config) result {
	res := result{Machine: benchkit.DescribeMachine(), Config: cfg}
	tb.BuildBinary()
	progress("building the test image and starting a loopback registry")
	img := testimage.Serve(tb, testimage.Options{Tag: "dockerapi"})
	progress("starting 1 manager + 1 worker")
	m := harness.NewNode(tb, "manager1", benchkit.DaemonArgs(cfg.LogLevel)...)
	w := harness.NewNode(tb, "worker1", benchkit.DaemonArgs(cfg.LogLevel)...)
	m.Start()
	w.Start()
	harness.NewCluster(tb, []*harness.Node{m}, []*harness.Node{w})
	sock := filepath.Join(filepath.Dir(m.Socket), "docker.sock")
	dockerEnv := []string{"DOCKER_HOST=unix://" + sock, "DOCKER_CONFIG=" + tb.TempDir(), "DOCKER_CLI_HINTS=false"}
	shoal := func(args ...string) []string { return append([]string{"-H", "unix://" + m.Socket}, args...) }
	reps := strconv.Itoa(cfg.Replicas)

	// The image is on both nodes before the first measured create.
	m.MustCLI("service", "create", "--name", "warm", "--replicas", "2", "--replicas-max-per-node", "1", img.Ref)
	m.MustCLI("service", "rm", "warm")
	gone := func(name string) {
		if err := benchkit.WaitFor(time.Minute, func() error {
			for _, n := range []*harness.Node{m, w} {
				if c := harness.Of(name, n.RunningContainers()); len(c) > 0 {
					return fmt.Errorf("%s still runs %d containers on %s", name, len(c), n.Name)
				}
			}
			return nil
		}); err != nil {
			tb.Fatalf("%v", err)
		}
	}
	gone("warm")
	var viaDocker, viaShoal []time.Duration
	for i := 0; i < cfg.Rounds; i++ {
		for _, docker := range []bool{i%2 == 0, i%2 != 0} {
			name := fmt.Sprintf("c%d", i)
			var d time.Duration
			if docker {
				name = "d" + name
				d = timed(tb, dockerCLI, []string{"service", "create", "--name", name, "--replicas", reps, img.Ref}, dockerEnv...)
				viaDocker = append(viaDocker, d)
			} else {
				name = "s" + name
				d = timed(tb, m.Bin, shoal("service", "create", "--name", name, "--replicas", reps, img.Ref))
				viaShoal = append(viaShoal, d)
			}
			progress("create until converged, %s: %s", map[bool]string{true: "docker", false: "shoal "}[docker], d.Round(time.Millisecond))
			m.MustCLI("service", "rm", name)
			gone(name)
		}
	}
	res.Converge = summarize(viaDocker, viaShoal)

	progress("creating %d services of 0 replicas", cfg.Services)
	ctl := shoalv1.NewControlServiceClient(m.LocalConn())
	var g errgroup.Group
	g.SetLimit(16)
	for i := 0; i < cfg.Services; i++ {
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := ctl.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: benchkit.ServiceSpec(fmt.Sprintf("list%04d", i))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		tb.Fatalf("create the services: %v", err)
	}
	httpc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	apiList := func() time.Duration {
		start := time.Now()
		resp, err := httpc.Get("http://docker/v1.50/services?status=true")
		if err != nil {
			tb.Fatalf("GET /services: %v", err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n < int64(cfg.Services)*100 {
			tb.Fatalf("GET /services: %d, %d bytes", resp.StatusCode, n)
		}
		return time.Since(start)
	}
	grpcList := func() time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		s, err := ctl.ListServices(ctx, &shoalv1.ListServicesRequest{})
		if err != nil || len(s.GetServices()) < cfg.Services {
			tb.Fatalf("ListServices: %v", err)
		}
		if _, err := ctl.ListTasks(ctx, &shoalv1.ListTasksRequest{}); err != nil {
			tb.Fatalf("ListTasks: %v", err)
		}
		return time.Since(start)
	}
	apiList()
	grpcList()
	var callDocker, callGRPC []time.Duration
	for i := 0; i < cfg.Calls; i++ {
		callDocker = append(callDocker, apiList())
		callGRPC = append(callGRPC, grpcList())
	}
	res.ListCall = summarize(callDocker, callGRPC)
	progress("list call with %d services: docker API %.2f ms, gRPC %.2f ms (medians)", cfg.Services, res.ListCall.Docker.P50MS, res.ListCall.Baseline.P50MS)
	var cliDocker, cliShoal []time.Duration
	for i := 0; i < cfg.Rounds; i++ {
		cliDocker = append(cliDocker, timed(tb, dockerCLI, []string{"service", "ls"}, dockerEnv...))
		cliShoal = append(cliShoal, timed(tb, m.Bin, shoal("service", "ls")))
	}
	res.ListCLI = summarize(cliDocker, cliShoal)
	return res
}

func summarize(docker, baseline []time.Duration) pair {
	p := pair{Docker: benchkit.Summarize(append([]time.Duration{}, docker...)), Baseline: benchkit.Summarize(append([]time.Duration{}, baseline...))}
	if b := benchkit.Median(baseline); b > 0 {
		p.Ratio = float64(int(float64(benchkit.Median(docker))/float64(b)*100+0.5)) / 100
	}
	return p
}

func printSummary(r result) {
	fmt.Printf("%s\n", r.Machine)
	fmt.Printf("%-44s %12s %12s %7s\n", "ms: median (p90)", "docker API", "baseline", "ratio")
	row := func(what string, p pair) {
		fmt.Printf("%-44s %12s %12s %6.2fx\n", what,
			fmt.Sprintf("%.1f (%.1f)", p.Docker.P50MS, p.Docker.P90MS), fmt.Sprintf("%.1f (%.1f)", p.Baseline.P50MS, p.Baseline.P90MS), p.Ratio)
	}
	row(fmt.Sprintf("service create --replicas %d, until converged", r.Config.Replicas), r.Converge)
	row(fmt.Sprintf("GET /services?status=true, %d services", r.Config.Services), r.ListCall)
	row(fmt.Sprintf("docker/shoal service ls, %d services", r.Config.Services), r.ListCLI)
	fmt.Println("baselines: shoal service create; gRPC ListServices + ListTasks; shoal service ls")
}
