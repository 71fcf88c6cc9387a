package faults

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/shoal-run/shoal/internal/tlsutil"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
)

// BadCase is one bad request of scenario 8 and what it must get.
type BadCase struct {
	Name string
	Code codes.Code
	Text string // the error message contains it
	Call func(ctx context.Context) error
}

// BadInputResult is what scenario 8 saw.
type BadInputResult struct {
	Cases  []string // "name: code: message"
	Joins  []string // refused joins: the CLI's message
	Strays int      // raw connections of garbage the daemons survived
}

// remoteControl is a control API client on host from, with the
// certificate in certDir, to a manager's address over the test network,
// the way an operator's machine reaches a cluster.
func remoteControl(e *Env, from *harness.Host, certDir, addr string) shoalv1.ControlServiceClient {
	e.T.Helper()
	var creds credentials.TransportCredentials
	if certDir == "" {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}) //nolint:gosec // the point is a client without a certificate
	} else {
		id, err := tlsutil.Files{Dir: certDir}.Load()
		if err != nil {
			e.T.Fatalf("certificates in %s: %v", certDir, err)
		}
		creds = credentials.NewTLS(id.ClientConfig())
	}
	c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return from.DialContext(ctx, "tcp", a) }),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() { c.Close() })
	return shoalv1.NewControlServiceClient(c)
}

// state is what must not change: services with their versions, nodes
// with their roles, and every daemon's PID.
func (e *Env) state() string {
	var b strings.Builder
	leader := e.C.Leader(20 * time.Second)
	ctx, cancel := ctxFor(5 * time.Second)
	defer cancel()
	svcs, err := leader.Control().ListServices(ctx, &shoalv1.ListServicesRequest{})
	if err != nil {
		e.T.Fatalf("list services: %v", err)
	}
	var lines []string
	for _, s := range svcs.GetServices() {
		lines = append(lines, fmt.Sprintf("service %s v%d replicas %d", s.GetSpec().GetName(), s.GetMeta().GetVersion(), s.GetSpec().GetReplicated().GetReplicas()))
	}
	for _, n := range e.nodes(leader) {
		lines = append(lines, fmt.Sprintf("node %s %s %s", n.GetStatus().GetAddr(), n.GetRole(), n.GetStatus().GetState()))
	}
	for _, n := range e.C.Nodes() {
		lines = append(lines, fmt.Sprintf("daemon %s pid %d", n.Name, n.PID()))
	}
	sort.Strings(lines)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// BadInput is scenario 8: bad requests across the API from a client on
// another host (malformed specs, an oversized request, unknown services,
// stale versions, the wrong certificate or none), joins with wrong tokens,
// and garbage on every port. Each gets a clear error; afterwards the
// cluster's state is what it was and no daemon crashed. An image that
// does not exist is the one bad input that creates something, as in
// Docker Swarm: the service exists and its tasks say the image is not
// found; it is removed again.
func BadInput(e *Env) BadInputResult {
	e.T.Helper()
	if len(e.C.Managers) < 2 || len(e.C.Workers) < 1 {
		e.T.Fatal("scenario 8 needs 2 managers and a worker")
	}
	svc := e.Create(e.Spec("web", 2))
	m1, m2, w := e.C.Managers[0], e.C.Managers[1], e.C.Workers[0]
	client := remoteControl(e, w.Host, m1.CertDir(), m2.Addr)
	asWorker := remoteControl(e, w.Host, w.CertDir(), m2.Addr)
	anonymous := remoteControl(e, w.Host, "", m2.Addr)
	before := e.state()

	spec := func(mut func(s *shoalv1.ServiceSpec)) *shoalv1.ServiceSpec {
		s := e.Spec("bad", 1)
		mut(s)
		return s
	}
	create := func(s *shoalv1.ServiceSpec) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := client.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: s})
			return err
		}
	}
	cases := []BadCase{
		{"no spec", codes.InvalidArgument, "service.name: is required", create(nil)},
		{"empty name", codes.InvalidArgument, "service.name: is required", create(spec(func(s *shoalv1.ServiceSpec) { s.Name = "" }))},
		{"bad name", codes.InvalidArgument, "may only contain letters", create(spec(func(s *shoalv1.ServiceSpec) { s.Name = "web server!" }))},
		{"negative replicas", codes.InvalidArgument, "service.replicas: must be >= 0, got -2", create(spec(func(s *shoalv1.ServiceSpec) { s.GetReplicated().Replicas = -2 }))},
		{"bad image", codes.InvalidArgument, "not a valid image reference", create(spec(func(s *shoalv1.ServiceSpec) { s.Task.Container.Image = "Not An Image" }))},
		{"no image", codes.InvalidArgument, "service.image: is required", create(spec(func(s *shoalv1.ServiceSpec) { s.Task.Container.Image = "" }))},
		{"bad env", codes.InvalidArgument, "must be KEY=VALUE", create(spec(func(s *shoalv1.ServiceSpec) { s.Task.Container.Env = []string{"=oops"} }))},
		{"name taken", codes.AlreadyExists, "web", create(e.Spec("web", 1))},
		{"spec over the limit", codes.InvalidArgument, "over the limit of 256 KiB", create(spec(func(s *shoalv1.ServiceSpec) {
			s.Task.Container.Env = []string{"BIG=" + strings.Repeat("x", 300<<10)}
		}))},
		{"request over 4 MiB", codes.ResourceExhausted, "larger than max", create(spec(func(s *shoalv1.ServiceSpec) {
			s.Task.Container.Env = []string{"BIG=" + strings.Repeat("x", 5<<20)}
		}))},
		{"update unknown service", codes.NotFound, "nosuch", func(ctx context.Context) error {
			_, err := client.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: "nosuch", Version: 1, Spec: e.Spec("nosuch", 1)})
			return err
		}},
		{"update at a stale version", codes.Aborted, "changed by someone else", func(ctx context.Context) error {
			_, err := client.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: svc.GetId(), Version: svc.GetMeta().GetVersion() - 1, Spec: e.Spec("web", 5)})
			return err
		}},
		{"malformed update", codes.InvalidArgument, "service.replicas", func(ctx context.Context) error {
			s := e.Spec("web", -1)
			_, err := client.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: svc.GetId(), Version: svc.GetMeta().GetVersion(), Spec: s})
			return err
		}},
		{"remove unknown service", codes.NotFound, "nosuch", func(ctx context.Context) error {
			_, err := client.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: "nosuch"})
			return err
		}},
		{"remove unknown node", codes.NotFound, "nosuch", func(ctx context.Context) error {
			_, err := client.RemoveNode(ctx, &shoalv1.RemoveNodeRequest{NodeId: "nosuch"})
			return err
		}},
		{"a worker's certificate", codes.PermissionDenied, "manager", func(ctx context.Context) error {
			_, err := asWorker.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: svc.GetId()})
			return err
		}},
		{"no certificate", codes.Unauthenticated, "certificate", func(ctx context.Context) error {
			_, err := anonymous.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: svc.GetId()})
			return err
		}},
	}
	var r BadInputResult
	for _, c := range cases {
		ctx, cancel := ctxFor(10 * time.Second)
		op := e.H.Invoke("client", c.Name, nil)
		err := c.Call(ctx)
		cancel()
		Complete(op, err)
		st, _ := status.FromError(err)
		switch {
		case err == nil:
			e.T.Fatalf("%s: accepted; want %s", c.Name, c.Code)
		case st.Code() != c.Code || !strings.Contains(st.Message(), c.Text):
			e.T.Fatalf("%s: got %s %q; want %s containing %q", c.Name, st.Code(), st.Message(), c.Code, c.Text)
		case strings.Contains(st.Message(), "goroutine ") || strings.Contains(st.Message(), ".go:"):
			e.T.Fatalf("%s: the error carries a stack trace: %q", c.Name, st.Message())
		}
		r.Cases = append(r.Cases, fmt.Sprintf("%s: %s: %s", c.Name, st.Code(), st.Message()))
	}

	// Joins with wrong tokens, from a new host.
	stranger := e.Net.AddHost("stranger").NewNode("stranger")
	stranger.Start()
	good := strings.TrimSpace(m1.MustCLI("swarm", "join-token", "-q", "worker"))
	parts := strings.Split(good, "-") // SHOAL-1-<CA digest>-<secret>
	if len(parts) != 4 {
		e.T.Fatalf("unexpected join token format %q", good)
	}
	otherCA := append([]string{}, parts...)
	otherCA[2] = strings.Repeat("0", len(parts[2]))
	for _, tc := range []struct{ name, token, text string }{
		{"garbage token", "not-a-token", "token"},
		{"token of another cluster", strings.Join(otherCA, "-"), "does not match the join token"},
		{"wrong secret", good[:len(good)-4] + "zzzz", "token"},
	} {
		op := e.H.Invoke("stranger", "join: "+tc.name, nil)
		_, err := stranger.CLI("swarm", "join", "--token", tc.token, "--advertise-addr", stranger.Addr, m1.Addr)
		if err == nil {
			op.Ok(nil)
			e.T.Fatalf("join with a %s accepted", tc.name)
		}
		op.Fail(err) // refused: the stranger is not in the cluster
		msg := err.Error()
		if !strings.Contains(strings.ToLower(msg), tc.text) || strings.Contains(msg, "goroutine ") {
			e.T.Fatalf("join with a %s: unclear error %q", tc.name, msg)
		}
		r.Joins = append(r.Joins, tc.name+": "+msg[strings.LastIndex(msg, ": Error")+2:])
	}

	// Garbage on the gRPC, Raft and gossip ports.
	junk := []byte("GET / HTTP/1.1\r\n\r\n\x00\xff\x16\x03\x01garbage" + strings.Repeat("\xde\xad", 4096))
	for _, n := range e.C.Managers {
		for _, addr := range []string{n.Addr, n.RaftAddr, n.GossipAddr} {
			for _, network := range []string{"tcp", "udp"} {
				if network == "udp" && addr != n.GossipAddr {
					continue
				}
				ctx, cancel := ctxFor(2 * time.Second)
				c, err := w.Host.DialContext(ctx, network, addr)
				cancel()
				if err != nil {
					e.T.Fatalf("dial %s %s: %v", network, addr, err)
				}
				_ = c.SetDeadline(time.Now().Add(time.Second))
				_, _ = c.Write(junk)
				_, _ = c.Read(make([]byte, 512))
				c.Close()
				r.Strays++
			}
		}
	}
	e.H.Fault("garbage sent", fmt.Sprintf("%d connections", r.Strays))
	stranger.Kill()

	// An image no registry has: the service is created, its tasks say so.
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	missing := harness.RegistryAddr + "/nosuch:1"
	resp, err := client.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: e.Spec("ghost", 1)})
	if err == nil {
		ghost := resp.GetService()
		ghost.Spec.Task.Container.Image = missing
		_, err = client.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: ghost.GetId(), Version: ghost.GetMeta().GetVersion(), Spec: ghost.GetSpec()})
	}
	if err != nil {
		e.T.Fatalf("service with an unknown image: %v", err)
	}
	e.Eventually(30*time.Second, func() error {
		tasks, err := e.Tasks("ghost")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			if msg := t.GetStatus().GetErr(); t.GetSpec().GetContainer().GetImage() == missing && strings.Contains(msg, missing) && strings.Contains(msg, "not found") {
				r.Cases = append(r.Cases, "unknown image: task "+t.GetStatus().GetState().String()+": "+msg)
				return nil
			}
		}
		return fmt.Errorf("none of the %d tasks of ghost says its image %s is not found", len(tasks), missing)
	})
	if _, err := client.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: "ghost"}); err != nil {
		e.T.Fatalf("remove ghost: %v", err)
	}

	e.Eventually(30*time.Second, func() error {
		if after := e.state(); after != before {
			return fmt.Errorf("the bad input changed the cluster:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		return e.Converged("web", 2)
	})
	for _, n := range e.C.Nodes() {
		if !n.Running() {
			e.T.Fatalf("%s's daemon is gone", n.Name)
		}
	}
	return r
}
