package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// lockedMsg is what every call to a locked manager answers (docker's
// wording).
const lockedMsg = "Swarm is encrypted and needs to be unlocked before it can be used. Please use `shoal swarm unlock` to unlock it"

var unlockKeyRE = regexp.MustCompile(`SHOALKEY-1-[A-Za-z0-9+/]{43}`)

// unlockNote checks docker's note on the unlock key in out and returns
// the key it gives.
func unlockNote(t *testing.T, out string) string {
	t.Helper()
	for _, want := range []string{
		"To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\ncommand and provide the following key:\n\n    SHOALKEY-1-",
		"\n\nPlease remember to store this key in a password manager, since without it you\nwill not be able to restart the manager.\n",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	keys := unlockKeyRE.FindAllString(out, -1)
	if len(keys) != 1 {
		t.Fatalf("want one unlock key in:\n%s", out)
	}
	return keys[0]
}

// unlockCLI runs `shoal swarm unlock` on n with key on its stdin.
func unlockCLI(n *harness.Node, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.Bin, "-H", "unix://"+n.Socket, "swarm", "unlock")
	cmd.Stdin = strings.NewReader(key + "\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String() + errb.String(), fmt.Errorf("shoal swarm unlock: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String() + errb.String(), nil
}

// otherKey is a well-formed unlock key that is nobody's.
func otherKey(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "SHOALKEY-1-" + base64.RawStdEncoding.EncodeToString(b)
}

func swarmState(t *testing.T, n *harness.Node) string {
	t.Helper()
	info, err := shoalv1.NewSwarmServiceClient(n.LocalConn()).Info(ctxT(t, 5*time.Second), &shoalv1.InfoRequest{})
	if err != nil {
		t.Fatalf("%s: Info: %v", n.Name, err)
	}
	return info.GetState()
}

// mustBeLocked checks that n answers as a locked manager: Info says
// locked, cluster commands fail with the locked error and exit non-zero,
// and its manager gRPC, Raft and gossip ports are closed.
func mustBeLocked(t *testing.T, n *harness.Node) {
	t.Helper()
	if s := swarmState(t, n); s != "locked" {
		t.Fatalf("%s: Info state = %q; want locked", n.Name, s)
	}
	for _, args := range [][]string{{"node", "ls"}, {"service", "ls"}, {"swarm", "unlock-key"}, {"swarm", "join-token", "worker"}} {
		out, err := n.CLI(args...)
		// harness.Node.CLI says "exit status N" for a command that ran
		// and failed.
		if err == nil || !strings.Contains(err.Error(), lockedMsg) || !strings.Contains(err.Error(), "exit status 1") {
			t.Fatalf("%s: shoal %s on a locked manager = %q, %v; want the locked error and a non-zero exit", n.Name, strings.Join(args, " "), out, err)
		}
	}
	// A local container attached to a cluster network needs the cluster.
	if out, err := n.CLI("run", "-d", "--network", "appnet", "busybox", "true"); err == nil || !strings.Contains(err.Error(), lockedMsg) {
		t.Fatalf("%s: shoal run --network on a locked manager = %q, %v; want the locked error", n.Name, out, err)
	}
	for name, addr := range map[string]string{"grpc": n.Addr, "raft": n.RaftAddr, "gossip": n.GossipAddr} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s: the locked manager accepts connections on its %s port %s", n.Name, name, addr)
		}
	}
}

// keySet is what a manager's certificate set holds of its keys: whether
// its material is autolocked, the material's bytes, and whether the node
// key is sealed.
type keySet struct {
	autolock bool
	material string
	sealed   bool
}

func readKeySet(t *testing.T, n *harness.Node) keySet {
	t.Helper()
	mat, err := os.ReadFile(filepath.Join(n.CertDir(), "manager.keys"))
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	var f struct {
		Autolock bool `json:"autolock"`
	}
	if err := json.Unmarshal(mat, &f); err != nil {
		t.Fatalf("%s: manager.keys: %v", n.Name, err)
	}
	key, err := os.ReadFile(filepath.Join(n.CertDir(), "node.key"))
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	block, _ := pem.Decode(key)
	if block == nil {
		t.Fatalf("%s: node.key holds no PEM block", n.Name)
	}
	return keySet{autolock: f.Autolock, material: string(mat), sealed: block.Type == "SHOAL SEALED PRIVATE KEY"}
}

// waitKeySet waits until n's disk is wrapped as autolock says.
func waitKeySet(t *testing.T, n *harness.Node, autolock bool, notMaterial string) keySet {
	t.Helper()
	var ks keySet
	harness.Eventually(t, 15*time.Second, func() error {
		ks = readKeySet(t, n)
		if ks.autolock != autolock || ks.sealed != autolock || ks.material == notMaterial {
			return fmt.Errorf("%s: key set autolock=%v sealed=%v (changed: %v); want autolock=%v", n.Name, ks.autolock, ks.sealed, ks.material != notMaterial, autolock)
		}
		return nil
	})
	return ks
}

// noKeyAnywhere checks that no log of n, and no file of its data dir,
// holds key.
func noKeyAnywhere(t *testing.T, n *harness.Node, key string) {
	t.Helper()
	if strings.Contains(n.DaemonLog(), key) {
		t.Fatalf("%s's log holds the unlock key", n.Name)
	}
	secret := strings.TrimPrefix(key, "SHOALKEY-1-")
	err := filepath.Walk(filepath.Join(n.Dir, "data"), func(path string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		if bytes.Contains(data, []byte(secret)) {
			return fmt.Errorf("%s holds the unlock key", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// writer keeps changing a service's labels through a manager until
// stopped, and counts what succeeded and what failed.
type writer struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	done       chan struct{}
}

func startWriter(via func(args ...string) (string, error), svc string) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			if _, err := via("service", "update", "-d", "--label-add", fmt.Sprintf("write=%d", i), svc); err != nil {
				w.failed.Add(1)
				w.mu.Lock()
				w.errs = append(w.errs, err.Error())
				w.mu.Unlock()
			} else {
				w.ok.Add(1)
			}
		}
	}()
	return w
}

// more waits until n more writes than now have succeeded (a write that
// fails ends the wait, for finish to report).
func (w *writer) more(t *testing.T, n int64) {
	t.Helper()
	want := w.ok.Load() + n
	harness.Eventually(t, 30*time.Second, func() error {
		if w.failed.Load() > 0 || w.ok.Load() >= want {
			return nil
		}
		return fmt.Errorf("%d writes done; waiting for %d", w.ok.Load(), want)
	})
}

func (w *writer) finish(t *testing.T, what string) {
	t.Helper()
	close(w.stop)
	<-w.done
	if w.failed.Load() != 0 || w.ok.Load() == 0 {
		t.Fatalf("writes %s: %d ok, %d failed: %v", what, w.ok.Load(), w.failed.Load(), w.errs)
	}
	t.Logf("writes %s: %d ok, 0 failed", what, w.ok.Load())
}

// One manager under autolock: it restarts locked, serving nothing but
// its local socket, its container left running; a wrong key is refused;
// the right key brings it back with the same container. The key is then
// rotated while the cluster serves writes, and only the new key unlocks;
// with autolock off it restarts unlocked.
func TestAutolockSingleManager(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	m := harness.NewNode(t, "manager1")
	m.Start()
	out := m.MustCLI("swarm", "init", "--autolock", "--advertise-addr", m.Addr)
	key := unlockNote(t, out)
	if !strings.Contains(out, "Swarm initialized: current node (") {
		t.Fatalf("init output:\n%s", out)
	}
	if got := strings.TrimSpace(m.MustCLI("swarm", "unlock-key", "-q")); got != key {
		t.Fatalf("unlock-key -q = %q; want the key init printed", got)
	}
	if got := unlockNote(t, m.MustCLI("swarm", "unlock-key")); got != key {
		t.Fatalf("unlock-key = %q; want the key init printed", got)
	}
	if _, err := unlockCLI(m, key); err == nil || !strings.Contains(err.Error(), "swarm is not locked") {
		t.Fatalf("unlock of a running manager = %v; want swarm is not locked", err)
	}
	if inspect := m.MustCLI("swarm", "join-token", "worker"); strings.Contains(inspect, key) {
		t.Fatal("join-token shows the unlock key")
	}
	// From init on, the node key is sealed and the data key wrapped by the
	// unlock key.
	ks := waitKeySet(t, m, true, "")
	if out, err := m.CLI("-H", "tcp://"+m.Addr, "--cert-dir", m.CertDir(), "node", "ls"); err == nil || !strings.Contains(err.Error(), "is sealed with the swarm's unlock key") {
		t.Fatalf("node ls over tcp with the manager's sealed certificate set = %q, %v; want an error saying the key is sealed", out, err)
	}

	m.MustCLI("service", "create", "--name", "web", img.Ref)
	var pid int
	harness.Eventually(t, 30*time.Second, func() error {
		cs := harness.Of("web", m.RunningContainers())
		if len(cs) != 1 {
			return fmt.Errorf("web runs %d containers", len(cs))
		}
		pid = cs[0].Pid
		return nil
	})

	m.Stop()
	m.Start()
	mustBeLocked(t, m)
	if !processAlive(pid) {
		t.Fatalf("the locked daemon's container (pid %d) is gone", pid)
	}
	if _, err := unlockCLI(m, otherKey(t)); err == nil || !strings.Contains(err.Error(), "invalid key") {
		t.Fatalf("unlock with another key = %v; want invalid key", err)
	}
	if _, err := unlockCLI(m, "SHOALKEY-1-nonsense"); err == nil || !strings.Contains(err.Error(), "malformed") || strings.Contains(err.Error(), "nonsense") {
		t.Fatalf("unlock with a malformed key = %v; want malformed, without repeating it", err)
	}
	mustBeLocked(t, m)
	if got := readKeySet(t, m); got != ks {
		t.Fatal("refused unlocks changed the key set on disk")
	}
	if _, err := unlockCLI(m, key); err != nil {
		t.Fatal(err)
	}
	if s := swarmState(t, m); s != "active" {
		t.Fatalf("after unlock Info state = %q; want active", s)
	}
	// The ports the locked manager kept closed open again.
	harness.Eventually(t, 20*time.Second, func() error {
		for name, addr := range map[string]string{"grpc": m.Addr, "raft": m.RaftAddr, "gossip": m.GossipAddr} {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return fmt.Errorf("after unlock the %s port: %v", name, err)
			}
			c.Close()
		}
		return nil
	})
	harness.Eventually(t, 20*time.Second, func() error {
		out, err := m.CLI("service", "ls")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "1/1") {
			return fmt.Errorf("service ls:\n%s", out)
		}
		return nil
	})
	if cs := harness.Of("web", m.RunningContainers()); len(cs) != 1 || cs[0].Pid != pid {
		t.Fatalf("after unlock web runs %+v; want the same container, pid %d", cs, pid)
	}

	// Rotation while writes go on: none fails.
	w := startWriter(m.CLI, "web")
	w.more(t, 3)
	out = m.MustCLI("swarm", "unlock-key", "--rotate")
	if !strings.HasPrefix(out, "Successfully rotated manager unlock key.\n\n") {
		t.Fatalf("unlock-key --rotate:\n%s", out)
	}
	newKey := unlockNote(t, out)
	if newKey == key {
		t.Fatal("rotation kept the key")
	}
	ks = waitKeySet(t, m, true, ks.material)
	w.more(t, 3) // and writes go on after it
	w.finish(t, "during the rotation")
	if got := strings.TrimSpace(m.MustCLI("swarm", "unlock-key", "-q")); got != newKey {
		t.Fatalf("unlock-key -q after rotation = %q; want the new key", got)
	}
	m.Stop()
	m.Start()
	mustBeLocked(t, m)
	if _, err := unlockCLI(m, key); err == nil || !strings.Contains(err.Error(), "invalid key") {
		t.Fatalf("unlock with the key before the rotation = %v; want invalid key", err)
	}
	if _, err := unlockCLI(m, newKey); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		_, err := m.CLI("service", "ls")
		return err
	})

	// Autolock off: no key; the next restart needs none.
	out = m.MustCLI("swarm", "update", "--autolock=false")
	if out != "Swarm updated.\n" {
		t.Fatalf("swarm update --autolock=false:\n%s", out)
	}
	waitKeySet(t, m, false, ks.material)
	if out, err := m.CLI("swarm", "unlock-key"); err == nil || !strings.Contains(err.Error(), "no unlock key is set") {
		t.Fatalf("unlock-key with autolock off = %q, %v; want no unlock key is set", out, err)
	}
	if out, err := m.CLI("swarm", "unlock-key", "--rotate"); err == nil || !strings.Contains(err.Error(), "cannot rotate because autolock is not turned on") {
		t.Fatalf("unlock-key --rotate with autolock off = %q, %v", out, err)
	}
	m.Stop()
	m.Start()
	if s := swarmState(t, m); s != "active" {
		t.Fatalf("with autolock off the restarted manager is %q; want active", s)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		_, err := m.CLI("service", "ls")
		return err
	})
	if _, err := unlockCLI(m, newKey); err == nil || !strings.Contains(err.Error(), "swarm is not locked") {
		t.Fatalf("unlock with autolock off = %v; want swarm is not locked", err)
	}

	// On again: a new key; a locked manager leaves only with --force.
	third := unlockNote(t, m.MustCLI("swarm", "update", "--autolock=true"))
	if third == key || third == newKey {
		t.Fatal("autolock turned on again reused an old key")
	}
	waitKeySet(t, m, true, "")
	m.Stop()
	m.Start()
	mustBeLocked(t, m)
	if out, err := m.CLI("swarm", "leave"); err == nil || !strings.Contains(err.Error(), "locked manager") {
		t.Fatalf("leave of a locked manager without --force = %q, %v", out, err)
	}
	mustBeLocked(t, m)
	if out := m.MustCLI("swarm", "leave", "--force"); out != "Node left the swarm.\n" {
		t.Fatalf("leave --force of a locked manager:\n%s", out)
	}
	if s := swarmState(t, m); s != "inactive" {
		t.Fatalf("after leave --force Info state = %q; want inactive", s)
	}
	if _, err := os.Stat(m.CertDir()); err == nil {
		t.Fatal("the certificates are still there after leave --force")
	}
	for _, k := range []string{key, newKey, third} {
		noKeyAnywhere(t, m, k)
	}
}

func processAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// Three managers under autolock (the first turns it on; a promoted worker
// and a joined manager wrap with its key as soon as they have the cluster
// object): one restarts locked while the other two keep taking writes;
// unlocked, it catches up and serves as a voter. One that was down during
// a rotation unlocks with the key from before it, then re-wraps.
func TestAutolockThreeManagers(t *testing.T) {
	needRoot(t)
	c := harness.StartCluster(t, 1, 1)
	m1 := c.Managers[0]
	before := map[*harness.Node]keySet{}
	for _, m := range c.Managers {
		before[m] = readKeySet(t, m)
	}
	out := m1.MustCLI("swarm", "update", "--autolock=true")
	if !strings.HasPrefix(out, "Swarm updated.\n") {
		t.Fatalf("swarm update --autolock=true:\n%s", out)
	}
	key := unlockNote(t, out)
	// Every manager re-wraps its own keys with the new key, the followers
	// too.
	for _, m := range c.Managers {
		waitKeySet(t, m, true, before[m].material)
	}
	// A worker promoted now gets material and wraps it with the current
	// key as soon as it has the cluster object.
	promoted := c.Workers[0]
	if _, err := os.Stat(filepath.Join(promoted.CertDir(), "manager.keys")); err == nil {
		t.Fatal("a worker holds manager key material")
	}
	m1.MustCLI("node", "promote", promoted.ID())
	harness.Eventually(t, 30*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(promoted.CertDir(), "manager.keys")); err != nil {
			return fmt.Errorf("the promoted node has no key material yet: %v", err)
		}
		return nil
	})
	waitKeySet(t, promoted, true, "")
	// So does a manager that joins now.
	joined := harness.NewNode(t, "manager3")
	joined.Start()
	tok := strings.TrimSpace(m1.MustCLI("swarm", "join-token", "-q", "manager"))
	joined.MustCLI("swarm", "join", "--token", tok, "--advertise-addr", joined.Addr, m1.Addr)
	waitKeySet(t, joined, true, "")
	c.Managers, c.Workers = append(c.Managers, promoted, joined), nil
	harness.Eventually(t, 30*time.Second, func() error {
		ls, err := m1.CLI("node", "ls")
		if err != nil {
			return err
		}
		if strings.Count(ls, "Reachable")+strings.Count(ls, "Leader") != 3 {
			return fmt.Errorf("not three reachable managers yet:\n%s", ls)
		}
		return nil
	})
	if out := m1.MustCLI("swarm", "update", "--autolock=true"); out != "Swarm updated.\n" {
		t.Fatalf("swarm update --autolock=true with autolock on already printed:\n%s", out)
	}
	if got := strings.TrimSpace(m1.MustCLI("swarm", "unlock-key", "-q")); got != key {
		t.Fatal("turning autolock on again changed the key")
	}
	// Images nobody serves (loopback port 1): the writes are the point,
	// not containers.
	m1.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "0", "127.0.0.1:1/busybox:1")

	victim := c.Leader(10 * time.Second)
	others := c.Except(victim)
	victim.Stop()
	victim.Start()
	mustBeLocked(t, victim)

	// The others elect a leader and take writes meanwhile.
	via := others[0]
	harness.Eventually(t, 20*time.Second, func() error {
		_, err := via.CLI("service", "update", "-d", "--label-add", "during=lock", "web")
		return err
	})
	via.MustCLI("service", "scale", "-d", "web=2")
	// The writer has web to itself (another writer of web would meet
	// version conflicts, rightly).
	w := startWriter(via.CLI, "web")
	via.MustCLI("service", "create", "-d", "--name", "meanwhile", "--replicas", "0", "127.0.0.1:1/busybox:1")
	w.more(t, 5)
	w.finish(t, "while a manager is locked")
	mustBeLocked(t, victim)

	if _, err := unlockCLI(victim, otherKey(t)); err == nil || !strings.Contains(err.Error(), "invalid key") {
		t.Fatalf("unlock with another key = %v; want invalid key", err)
	}
	if _, err := unlockCLI(victim, key); err != nil {
		t.Fatal(err)
	}
	// It rejoins the managers and sees what was written meanwhile.
	harness.Eventually(t, 30*time.Second, func() error {
		ls, err := victim.CLI("node", "ls")
		if err != nil {
			return err
		}
		if strings.Count(ls, "Reachable")+strings.Count(ls, "Leader") != 3 {
			return fmt.Errorf("node ls on the unlocked manager:\n%s", ls)
		}
		svc, err := victim.CLI("service", "ls")
		if err != nil {
			return err
		}
		if !strings.Contains(svc, "meanwhile") || !strings.Contains(svc, "/2 ") {
			return fmt.Errorf("service ls on the unlocked manager lacks the service made and the scale done meanwhile:\n%s", svc)
		}
		return nil
	})
	// It is a voter again: with another manager stopped (the leader of
	// the meantime, unless the unlocked one leads again), it and the
	// third manager still serve, with every write.
	down := c.Leader(10 * time.Second)
	if down == victim {
		down = others[1]
	}
	down.Stop()
	harness.Eventually(t, 30*time.Second, func() error {
		out, err := victim.CLI("service", "inspect", "web")
		if err != nil {
			return err
		}
		if !regexp.MustCompile(`"during":\s*"lock"`).MatchString(out) {
			return fmt.Errorf("inspect on the unlocked manager lacks the label written while it was locked")
		}
		return nil
	})

	// The key is rotated while that manager is down: it is unlocked with
	// the key its disk was sealed with, then re-wraps with the new one.
	up := c.Except(down)
	sealedWith := readKeySet(t, down)
	for _, m := range up {
		before[m] = readKeySet(t, m)
	}
	out = victim.MustCLI("swarm", "unlock-key", "--rotate")
	newKey := unlockNote(t, out)
	for _, m := range up {
		waitKeySet(t, m, true, before[m].material)
	}
	down.Start()
	mustBeLocked(t, down)
	if _, err := unlockCLI(down, newKey); err == nil || !strings.Contains(err.Error(), "invalid key") {
		t.Fatalf("unlock of a manager that was down during the rotation with the new key = %v; want invalid key", err)
	}
	if _, err := unlockCLI(down, key); err != nil {
		t.Fatalf("unlock of a manager that was down during the rotation with the old key: %v", err)
	}
	waitKeySet(t, down, true, sealedWith.material)
	down.Stop()
	down.Start()
	mustBeLocked(t, down)
	if _, err := unlockCLI(down, key); err == nil || !strings.Contains(err.Error(), "invalid key") {
		t.Fatalf("unlock with the old key after the catch-up = %v; want invalid key", err)
	}
	if _, err := unlockCLI(down, newKey); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() error {
		_, err := down.CLI("service", "ls")
		return err
	})
	for _, m := range c.Managers {
		noKeyAnywhere(t, m, key)
		noKeyAnywhere(t, m, newKey)
	}
}

// Certificate renewals under autolock keep the set sealed with the
// current key, rotations between them included: after several of each,
// a restart is locked and the last key unlocks it.
func TestAutolockCertificateRenewal(t *testing.T) {
	needRoot(t)
	m := harness.NewNode(t, "manager1")
	m.Start()
	key := unlockNote(t, m.MustCLI("swarm", "init", "--autolock", "--advertise-addr", m.Addr, "--cert-expiry", "6s"))
	certOf := func() string {
		data, err := os.ReadFile(filepath.Join(m.CertDir(), "node.crt"))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	for i := 0; i < 3; i++ {
		cert := certOf()
		harness.Eventually(t, 20*time.Second, func() error {
			if certOf() == cert {
				return fmt.Errorf("renewal %d: the certificate was not renewed yet", i+1)
			}
			return nil
		})
		if ks := readKeySet(t, m); !ks.autolock || !ks.sealed {
			t.Fatalf("after renewal %d the key set is autolock=%v sealed=%v; want both", i+1, ks.autolock, ks.sealed)
		}
		before := readKeySet(t, m).material
		key = unlockNote(t, m.MustCLI("swarm", "unlock-key", "--rotate"))
		waitKeySet(t, m, true, before)
	}
	m.Stop()
	m.Start()
	mustBeLocked(t, m)
	if _, err := unlockCLI(m, key); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		_, err := m.CLI("node", "ls")
		return err
	})
	noKeyAnywhere(t, m, key)
}
