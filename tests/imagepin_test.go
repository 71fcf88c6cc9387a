package tests

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/shoal-run/shoal/internal/regauth"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// buildImage builds a test image whose /app/version says tag.
func buildImage(t *testing.T, tag string) testimage.Built {
	t.Helper()
	b, err := testimage.Build("", testimage.Options{Tag: tag})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// versionsRun are the /app/version of svc's running containers on nodes.
func versionsRun(t *testing.T, svc string, nodes ...*harness.Node) []string {
	t.Helper()
	var out []string
	for _, n := range nodes {
		for _, c := range harness.Of(svc, n.RunningContainers()) {
			out = append(out, strings.TrimSpace(inside(t, c, "/app/version")))
		}
	}
	return out
}

// A service's image is pinned to the digest its tag names at create: a
// tag moved afterwards changes nothing of the service, and a scale-up
// runs the same bits; --no-resolve-image keeps the tag, and a registry
// that cannot be asked gives docker's warning.
func TestServiceImagePinned(t *testing.T) {
	needRoot(t)
	v1, v2 := buildImage(t, "v1"), buildImage(t, "v2")
	reg, err := testimage.StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	ref, err := reg.Push(v1.Image, "whoami:moving")
	if err != nil {
		t.Fatal(err)
	}
	d1, err := v1.Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	c := harness.StartCluster(t, 1, 1)
	m, w := c.Managers[0], c.Workers[0]
	m.MustCLI("service", "create", "--name", "web", "--constraint", "node.role==worker", ref)
	pinned := ref + "@" + d1.String()
	if got := strings.TrimSpace(m.MustCLI("service", "inspect", "--format", "{{.Spec.Task.Container.Image}}", "web")); got != pinned {
		t.Fatalf("service inspect shows image %q; want the pinned %q", got, pinned)
	}
	if ls := m.MustCLI("service", "ls", "--format", "{{.Image}}"); strings.TrimSpace(ls) != ref {
		t.Errorf("service ls shows %q; want %q (docker's: the tag, without the digest)", ls, ref)
	}
	if ps := m.MustCLI("service", "ps", "--no-trunc", "--format", "{{.Image}}", "web"); strings.TrimSpace(ps) != pinned {
		t.Errorf("service ps --no-trunc shows %q; want %q", ps, pinned)
	}

	// The tag moves; the service keeps running v1, and new replicas too.
	if _, err := reg.Push(v2.Image, "whoami:moving"); err != nil {
		t.Fatal(err)
	}
	m.MustCLI("service", "scale", "web=3")
	harness.Eventually(t, 60*time.Second, func() error {
		got := versionsRun(t, "web", w)
		if len(got) != 3 {
			return fmt.Errorf("web runs %d containers; want 3", len(got))
		}
		for _, v := range got {
			if v != "v1" {
				return fmt.Errorf("a replica runs %q after the tag moved: %q; want every one v1", v, got)
			}
		}
		return nil
	})

	// --image re-resolves: the tag now names v2.
	m.MustCLI("service", "update", "--image", ref, "web")
	harness.Eventually(t, 60*time.Second, func() error {
		got := versionsRun(t, "web", w)
		if strings.Join(got, ",") != "v2,v2,v2" {
			return fmt.Errorf("after update --image: %q; want v2 everywhere", got)
		}
		return nil
	})

	// --no-resolve-image: the reference stays as given.
	m.MustCLI("service", "create", "-d", "--name", "loose", "--no-resolve-image", ref)
	if got := strings.TrimSpace(m.MustCLI("service", "inspect", "--format", "{{.Spec.Task.Container.Image}}", "loose")); got != ref {
		t.Errorf("--no-resolve-image: image %q; want %q", got, ref)
	}

	// A registry nobody answers at: docker's warning, and the service is
	// made with the reference as given.
	out, errOut, err := m.CLIOut("service", "create", "-d", "--name", "nowhere", "127.0.0.1:1/nothing:tag", "true")
	if err != nil || !strings.Contains(errOut, "image 127.0.0.1:1/nothing:tag could not be accessed on a registry to record\nits digest.") {
		t.Errorf("create with an unreachable registry: %v; stdout %q, stderr %q", err, out, errOut)
	}
	if got := strings.TrimSpace(m.MustCLI("service", "inspect", "--format", "{{.Spec.Task.Container.Image}}", "nowhere")); got != "127.0.0.1:1/nothing:tag" {
		t.Errorf("unresolved image %q", got)
	}
}

// A private registry's credentials travel with the service
// (--with-registry-auth) to the nodes that pull its image, and an update
// without the flag keeps them; without them a node's pull is refused.
// They are never shown, logged, or on any node's disk.
func TestServiceWithRegistryAuth(t *testing.T) {
	needRoot(t)
	password := "pw-" + strings.Repeat("z", 12) + "-marker"
	reg, err := testimage.ListenRegistry(testimage.RegistryOptions{User: "alice", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	ref, err := reg.Push(buildImage(t, "private").Image, "whoami:private")
	if err != nil {
		t.Fatal(err)
	}
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]
	// The client's docker config, as `docker login` leaves it; the
	// daemons (started before) have none.
	cfgDir := t.TempDir()
	encoded := base64.StdEncoding.EncodeToString([]byte("alice:" + password))
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+reg.Addr()+`":{"auth":"`+encoded+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)

	// Without --with-registry-auth the node's pull is refused.
	_, errOut, err := m.CLIOut("service", "create", "-d", "--name", "anon", "--restart-condition", "none", "--constraint", "node.role==worker", ref)
	if err != nil || !strings.Contains(errOut, "could not be accessed on a registry") {
		t.Errorf("create without credentials: %v; stderr %q (want docker's warning: the manager cannot resolve it either)", err, errOut)
	}
	harness.Eventually(t, 60*time.Second, func() error {
		ps, err := m.CLI("service", "ps", "--no-trunc", "--format", "{{.Error}}", "anon")
		if err != nil || !strings.Contains(ps, "pull access denied for") {
			return fmt.Errorf("service ps: %q %v; want the registry's refusal", ps, err)
		}
		return nil
	})
	m.MustCLI("service", "rm", "anon")

	m.MustCLI("service", "create", "--name", "priv", "--with-registry-auth", "--constraint", "node.role==worker", "--replicas-max-per-node", "1", ref)
	harness.Eventually(t, 60*time.Second, func() error {
		if got := versionsRun(t, "priv", c.Workers...); len(got) != 1 || got[0] != "private" {
			return fmt.Errorf("priv runs %q; want one replica of the private image", got)
		}
		return nil
	})
	if img := m.MustCLI("service", "inspect", "--format", "{{.Spec.Task.Container.Image}}", "priv"); !strings.Contains(img, ref+"@sha256:") {
		t.Errorf("the private image was not pinned: %q", img)
	}
	// An update without the flag keeps them: the second replica lands on
	// the other worker, which pulls for the first time.
	m.MustCLI("service", "update", "--env-add", "A=1", "priv")
	m.MustCLI("service", "scale", "-d", "priv=2")
	harness.Eventually(t, 90*time.Second, func() error {
		for _, w := range c.Workers {
			if got := versionsRun(t, "priv", w); len(got) != 1 || got[0] != "private" {
				return fmt.Errorf("%s runs %q of priv; want one replica of the private image on each worker", w.Name, got)
			}
		}
		return nil
	})

	// Never shown, logged or on disk: as given, as docker's login keeps
	// it, or as the CLI sends it (X-Registry-Auth).
	sent, err := regauth.FromKeychain(authn.DefaultKeychain, reg.Addr())
	if err != nil || sent == "" {
		t.Fatalf("the client's credentials: %q, %v", sent, err)
	}
	for _, args := range [][]string{
		{"service", "inspect", "priv"}, {"service", "inspect", "--format", "{{json .}}", "priv"}, {"service", "inspect", "--pretty", "priv"},
		{"service", "ps", "--no-trunc", "--format", "json", "priv"}, {"service", "ls", "--format", "json"},
	} {
		out := m.MustCLI(args...)
		if strings.Contains(out, password) || strings.Contains(out, encoded) || strings.Contains(out, sent) || strings.Contains(out, "registry_auth") || strings.Contains(out, "RegistryAuth") {
			t.Errorf("%v shows the registry credentials:\n%s", args, out)
		}
	}
	// The manager's Raft log and snapshots are encrypted at rest, so no
	// node, manager or worker, has them in the clear on its disk.
	for _, n := range append(append([]*harness.Node{}, c.Managers...), c.Workers...) {
		for _, needle := range []string{password, encoded, sent} {
			if hits := filesWith(t, filepath.Join(n.Dir, "data"), []byte(needle), true); len(hits) > 0 {
				t.Errorf("%s holds the credentials on disk: %q", n.Name, hits)
			}
			if strings.Contains(n.DaemonLog(), needle) {
				t.Errorf("%s's daemon log holds the credentials", n.Name)
			}
		}
	}
}
