package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// secretValue is a secret's content unique to this run, with the forms
// in which output could carry it: the bytes, and their base64 (JSON's
// form of bytes).
type secretValue struct{ raw []byte }

func newSecretValue(t *testing.T) secretValue {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return secretValue{[]byte("pw-" + hex.EncodeToString(b))}
}

// leakedIn reports in which form out carries the value, if it does; it
// never says the value itself, so a failing test prints no secret.
func (v secretValue) leakedIn(out string) string {
	for form, s := range map[string]string{
		"raw":        string(v.raw),
		"base64":     base64.StdEncoding.EncodeToString(v.raw),
		"base64-url": base64.URLEncoding.EncodeToString(v.raw),
		"base64-raw": base64.RawStdEncoding.EncodeToString(v.raw),
	} {
		if strings.Contains(out, s) {
			return form
		}
	}
	return ""
}

// cliStdin runs the CLI on n with stdin; its output is returned whole,
// stdout and stderr, for the caller to check.
func cliStdin(n *harness.Node, stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(n.Bin, append([]string{"-H", "unix://" + n.Socket}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// secretsCLI runs the CLI on n and checks that nothing it printed, or
// said in an error, carries any of the values.
type secretsCLI struct {
	t      *testing.T
	n      *harness.Node
	values []secretValue
}

// redact is msg with every form of every value replaced, for a
// failure message.
func (s secretsCLI) redact(msg string) string {
	for _, v := range s.values {
		for _, enc := range []string{string(v.raw), base64.StdEncoding.EncodeToString(v.raw), base64.URLEncoding.EncodeToString(v.raw), base64.RawStdEncoding.EncodeToString(v.raw)} {
			msg = strings.ReplaceAll(msg, enc, "<secret value>")
		}
	}
	return msg
}

func (s secretsCLI) check(args []string, out string) {
	s.t.Helper()
	for i, v := range s.values {
		if form := v.leakedIn(out); form != "" {
			s.t.Errorf("shoal %s: its output carries secret value %d (%s form)", strings.Join(args, " "), i, form)
		}
	}
}

// run is the CLI's output (with any value redacted), failing the test
// on an error.
func (s secretsCLI) run(args ...string) string {
	s.t.Helper()
	out, err := s.n.CLI(args...)
	s.check(args, out)
	if err != nil {
		s.check(args, err.Error())
		s.t.Fatalf("shoal %s: %s", strings.Join(args, " "), s.redact(err.Error()))
	}
	return s.redact(out) // checked above; what a failure message may show
}

// fails is the CLI's error for a command that must fail, with every
// part of its output checked; it fails the test when the command
// succeeds, or when the error lacks want.
func (s secretsCLI) fails(want string, args ...string) {
	s.t.Helper()
	out, err := s.n.CLI(args...)
	s.check(args, out)
	if err == nil {
		s.t.Fatalf("shoal %s succeeded; want an error with %q", strings.Join(args, " "), want)
	}
	msg := err.Error()
	s.check(args, msg)
	if !strings.Contains(msg, want) {
		s.t.Fatalf("shoal %s: %s; want an error with %q", strings.Join(args, " "), s.redact(msg), want)
	}
	if strings.Contains(msg, "goroutine ") || strings.Contains(msg, "rpc error") {
		s.t.Errorf("shoal %s: the error leaks internals: %s", strings.Join(args, " "), s.redact(msg))
	}
}

// The secret and config commands through the real CLI against a real
// one-node cluster: create from a file and from stdin, ls, inspect in
// every form, labels, rm; every bad input refused with its error and
// nothing changed; and no output, error or daemon log line carrying a
// secret's value.
func TestSecretAndConfigCLI(t *testing.T) {
	c := harness.StartCluster(t, 1, 0)
	m := c.Managers[0]
	fromFile, fromStdin := newSecretValue(t), newSecretValue(t)
	cli := secretsCLI{t: t, n: m, values: []secretValue{fromFile, fromStdin}}
	dir := t.TempDir()
	file := filepath.Join(dir, "db_password")
	if err := os.WriteFile(file, fromFile.raw, 0o600); err != nil {
		t.Fatal(err)
	}

	id1 := strings.TrimSpace(cli.run("secret", "create", "--label", "team=blue", "-l", "tier", "db_password", file))
	args := []string{"secret", "create", "api_key", "-"}
	out, err := cliStdin(m, fromStdin.raw, args...)
	cli.check(args, out)
	if err != nil {
		t.Fatalf("secret create api_key - (stdin): %v: %s", err, cli.redact(out))
	}
	id2 := strings.TrimSpace(cli.redact(out))
	if len(id1) != 25 || len(id2) != 25 || id1 == id2 {
		t.Fatalf("secret create printed %q and %q; want two IDs", id1, id2)
	}

	ls := cli.run("secret", "ls")
	lines := strings.Split(strings.TrimSpace(ls), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID NAME DRIVER CREATED UPDATED" ||
		!strings.HasPrefix(lines[1], id2+" ") || !strings.Contains(lines[1], " api_key ") ||
		!strings.HasPrefix(lines[2], id1+" ") || !strings.Contains(lines[2], " db_password ") || !strings.Contains(ls, " ago") {
		t.Errorf("secret ls:\n%s", ls)
	}
	if got := cli.run("secret", "ls", "-q"); got != id2+"\n"+id1+"\n" {
		t.Errorf("secret ls -q = %q; want the two IDs by name", got)
	}
	row, _ := decodeJSON(t, strings.SplitN(cli.run("secret", "ls", "--format", "{{json .}}"), "\n", 2)[0]).(map[string]any)
	if row["Name"] != "api_key" || row["ID"] != id2 {
		t.Errorf("secret ls --format '{{json .}}' = %v", row)
	}
	cli.run("secret", "ls", "--format", "json")
	if got := cli.run("secret", "ls", "--format", "{{.Name}}={{.Labels}}"); got != "api_key=\ndb_password=team=blue,tier=\n" {
		t.Errorf("secret ls --format '{{.Name}}={{.Labels}}' = %q", got)
	}

	var inspected []struct {
		ID   string `json:"id"`
		Meta struct {
			Version json.Number `json:"version"`
		} `json:"meta"`
		Spec map[string]json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal([]byte(cli.run("secret", "inspect", "db_password", id2[:6])), &inspected); err != nil {
		t.Fatal(err)
	}
	var labels map[string]string
	if len(inspected) != 2 || inspected[0].ID != id1 || inspected[1].ID != id2 || string(inspected[0].Spec["name"]) != `"db_password"` ||
		json.Unmarshal(inspected[0].Spec["labels"], &labels) != nil || len(labels) != 2 || labels["team"] != "blue" || labels["tier"] != "" {
		t.Errorf("secret inspect: %d secrets, first %s spec name %s labels %s", len(inspected), inspected[0].ID, inspected[0].Spec["name"], inspected[0].Spec["labels"])
	}
	for _, s := range inspected {
		if _, ok := s.Spec["data"]; ok {
			t.Errorf("secret inspect %s shows a data field", s.ID)
		}
	}
	if got := cli.run("secret", "inspect", "--format", "{{json .}}", "db_password"); !strings.Contains(got, `"Name":"db_password"`) {
		t.Errorf("secret inspect --format '{{json .}}' = %s", got)
	}
	if got := cli.run("secret", "inspect", "--format", "{{.Spec.Name}} {{.Spec.Data}}", "api_key"); got != "api_key \n" {
		t.Errorf("secret inspect --format '{{.Spec.Name}} {{.Spec.Data}}' = %q; want the name and no data", got)
	}
	pretty := cli.run("secret", "inspect", "--pretty", "db_password")
	for _, want := range []string{"ID:              " + id1 + "\n", "Name:              db_password\n", "Labels:\n - team=blue\n - tier\n", "Driver:            \n", "Created at:        ", "Updated at:        "} {
		if !strings.Contains(pretty, want) {
			t.Errorf("secret inspect --pretty lacks %q:\n%s", want, pretty)
		}
	}

	// Bad input: a clear error, and nothing changes.
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 500*1024), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cli.fails("secret data must be larger than 0 and less than 512000 bytes, got 512000 bytes", "secret", "create", "big", big)
	cli.fails("invalid name \"bad name\", only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]", "secret", "create", "bad name", file)
	cli.fails("invalid name \"-pw\"", "secret", "create", "--", "-pw", file)
	cli.fails("invalid name", "secret", "create", strings.Repeat("a", 65), file)
	cli.fails("secret db_password already exists", "secret", "create", "db_password", file)
	cli.fails("error reading from "+empty+": data is empty", "secret", "create", "nothing", empty)
	cli.fails("secret file is required", "secret", "create", "nothing")
	cli.fails("requires at least 1 and at most 2 arguments", "secret", "create")
	args = []string{"secret", "create", "nothing", "-"}
	if out, err := cliStdin(m, nil, args...); err == nil || !strings.Contains(out, "error reading from STDIN: data is empty") {
		t.Errorf("secret create from empty stdin = %v: %s", err, cli.redact(out))
	}
	cli.fails(`secret "nope": not found`, "secret", "inspect", "nope")
	cli.fails(`secret "nope": not found`, "secret", "rm", "nope")
	if got := cli.run("secret", "ls", "-q"); got != id2+"\n"+id1+"\n" {
		t.Errorf("after refused creates, secret ls -q = %q; want the two secrets only", got)
	}
	if v := cli.run("secret", "inspect", "--format", "{{.Meta.Version}}", "db_password"); v != inspected[0].Meta.Version.String()+"\n" {
		t.Errorf("a refused duplicate changed db_password: version %s, was %s", strings.TrimSpace(v), inspected[0].Meta.Version)
	}

	cli.fails("unknown flag: --driver", "secret", "create", "--driver", "vault", "x", file)
	if got := cli.run("secret", "rm", "api_key"); got != "api_key\n" {
		t.Errorf("secret rm api_key printed %q", got)
	}
	if got := cli.run("secret", "ls", "-q"); got != id1+"\n" {
		t.Errorf("after rm, secret ls -q = %q", got)
	}

	// Configs: the same commands, their data shown, a larger limit.
	conf := []byte("listen 8080\nworkers 4\n")
	confFile := filepath.Join(dir, "app.conf")
	if err := os.WriteFile(confFile, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	cid := strings.TrimSpace(cli.run("config", "create", "--label", "v=1", "app.conf", confFile))
	if len(cid) != 25 {
		t.Fatalf("config create printed %q", cid)
	}
	pretty = cli.run("config", "inspect", "--pretty", "app.conf")
	if !strings.Contains(pretty, "ID:\t\t\t"+cid+"\nName:\t\t\tapp.conf\nLabels:\n - v=1\n") || !strings.HasSuffix(pretty, "\nData:\n"+string(conf)+"\n") {
		t.Errorf("config inspect --pretty:\n%s", pretty)
	}
	var cfgs []struct {
		Spec struct {
			Data []byte `json:"data"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(cli.run("config", "inspect", "app.conf")), &cfgs); err != nil || len(cfgs) != 1 || !bytes.Equal(cfgs[0].Spec.Data, conf) {
		t.Errorf("config inspect: %+v, %v; want its data", cfgs, err)
	}
	if ls := cli.run("config", "ls"); !strings.HasPrefix(ls, "ID ") || strings.Contains(strings.SplitN(ls, "\n", 2)[0], "DRIVER") || !strings.Contains(ls, cid+"   app.conf ") {
		t.Errorf("config ls:\n%s", ls)
	}
	// A config may be larger than a secret, up to its own limit.
	if err := os.WriteFile(big, bytes.Repeat([]byte("y"), 600*1024), 0o600); err != nil {
		t.Fatal(err)
	}
	cli.run("config", "create", "big.conf", big)
	if err := os.WriteFile(big, bytes.Repeat([]byte("y"), 1000*1024), 0o600); err != nil {
		t.Fatal(err)
	}
	cli.fails("config data must be larger than 0 and less than 1024000 bytes, got 1024000 bytes", "config", "create", "huge.conf", big)
	cli.fails("config app.conf already exists", "config", "create", "app.conf", confFile)
	cli.run("config", "rm", "big.conf", "app.conf")
	if got := cli.run("config", "ls", "-q"); got != "" {
		t.Errorf("after config rm, config ls -q = %q", got)
	}

	if form := fromFile.leakedIn(m.DaemonLog()); form != "" {
		t.Errorf("the daemon's log carries a secret's value (%s form)", form)
	}
	if form := fromStdin.leakedIn(m.DaemonLog()); form != "" {
		t.Errorf("the daemon's log carries a secret's value (%s form)", form)
	}
}

// Secrets and configs in services through the real CLI, with real
// containers: an unknown secret creates nothing; a service made with
// --secret and --config stores them resolved, shows them in inspect;
// the secret it uses cannot be removed (nothing changes); the rotation
// `service update --secret-rm old --secret-add source=new,target=db_password`
// rolls out new containers and shows in inspect, and then the old secret
// can go.
func TestServiceSecretsCLI(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 0)
	m := c.Managers[0]
	oldV, newV := newSecretValue(t), newSecretValue(t)
	cli := secretsCLI{t: t, n: m, values: []secretValue{oldV, newV}}
	dir := t.TempDir()
	for name, v := range map[string][]byte{"old": oldV.raw, "new": newV.raw, "app.conf": []byte("mode=test\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	oldID := strings.TrimSpace(cli.run("secret", "create", "old", filepath.Join(dir, "old")))
	newID := strings.TrimSpace(cli.run("secret", "create", "new", filepath.Join(dir, "new")))
	cfgID := strings.TrimSpace(cli.run("config", "create", "app.conf", filepath.Join(dir, "app.conf")))

	cli.fails("secret not found: nope", "service", "create", "-d", "--name", "web", "--secret", "old", "--secret", "nope", img.Ref)
	cli.fails("config not found: nope.conf", "service", "create", "-d", "--name", "web", "--config", "nope.conf", img.Ref)
	cli.fails("secret 'old' and secret 'new' have a conflicting target: '/run/secrets/pw'", "service", "create", "-d", "--name", "web",
		"--secret", "source=old,target=pw", "--secret", "source=new,target=pw", img.Ref)
	cli.fails("must not contain '..'", "service", "create", "-d", "--name", "web", "--secret", "source=old,target=../../etc/shadow", img.Ref)
	cli.fails("invalid field in secret request: owner", "service", "create", "-d", "--name", "web", "--secret", "source=old,owner=1", img.Ref)
	if got := cli.run("service", "ls", "-q"); got != "" {
		t.Fatalf("refused creates made services: %q", got)
	}

	cli.run("service", "create", "--name", "web", "--replicas", "2", "--secret", "source=old,target=db_password,uid=1000,mode=0400",
		"--secret", "new", "--config", "source=app.conf,target=/etc/app.conf", img.Ref)
	before := serviceContainers(c, "web")
	if len(before) != 2 {
		t.Fatalf("web runs %d containers; want 2", len(before))
	}
	type ref struct {
		SecretID   string `json:"secret_id"`
		SecretName string `json:"secret_name"`
		ConfigID   string `json:"config_id"`
		ConfigName string `json:"config_name"`
		File       struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
			GID  string `json:"gid"`
			Mode int    `json:"mode"`
		} `json:"file"`
	}
	inspectRefs := func() (secrets, configs []ref, version string) {
		t.Helper()
		var svcs []struct {
			Meta struct {
				Version json.Number `json:"version"`
			} `json:"meta"`
			Spec struct {
				Task struct {
					Container struct {
						Secrets []ref `json:"secrets"`
						Configs []ref `json:"configs"`
					} `json:"container"`
				} `json:"task"`
			} `json:"spec"`
		}
		if err := json.Unmarshal([]byte(cli.run("service", "inspect", "web")), &svcs); err != nil || len(svcs) != 1 {
			t.Fatalf("service inspect web: %v", err)
		}
		ct := svcs[0].Spec.Task.Container
		return ct.Secrets, ct.Configs, svcs[0].Meta.Version.String()
	}
	secrets, configs, _ := inspectRefs()
	show := func(rs []ref) string { return fmt.Sprintf("%+v", rs) }
	if len(secrets) != 2 || secrets[0].SecretID != oldID || secrets[0].SecretName != "old" || secrets[0].File.Name != "db_password" ||
		secrets[0].File.UID != "1000" || secrets[0].File.GID != "0" || secrets[0].File.Mode != 0o400 ||
		secrets[1].SecretID != newID || secrets[1].File.Name != "new" || secrets[1].File.UID != "0" || secrets[1].File.Mode != 0o444 {
		t.Errorf("service inspect: secrets %s", show(secrets))
	}
	if len(configs) != 1 || configs[0].ConfigID != cfgID || configs[0].ConfigName != "app.conf" || configs[0].File.Name != "/etc/app.conf" || configs[0].File.Mode != 0o444 {
		t.Errorf("service inspect: configs %s", show(configs))
	}
	pretty := cli.run("service", "inspect", "--pretty", "web")
	if !strings.Contains(pretty, "\nConfigs:\n Target:\t/etc/app.conf\n  Source:\tapp.conf\nSecrets:\n Target:\tdb_password\n  Source:\told\n Target:\tnew\n  Source:\tnew\n") {
		t.Errorf("service inspect --pretty lacks the Configs and Secrets blocks:\n%s", pretty)
	}

	// In use: refused, in swarmkit's words, and nothing changes.
	cli.fails("secret 'old' is in use by the following service: web", "secret", "rm", "old")
	cli.fails("config 'app.conf' is in use by the following service: web", "config", "rm", "app.conf")
	if got := cli.run("secret", "ls", "-q"); !strings.Contains(got, oldID) {
		t.Fatalf("a refused secret rm removed it: %q", got)
	}

	// An unknown secret in an update: refused, the service unchanged.
	_, _, version := inspectRefs()
	cli.fails("secret not found: nope", "service", "update", "-d", "--secret-add", "nope", "web")
	cli.fails(`--secret-rm typo: secret "typo": not found`, "service", "update", "-d", "--secret-rm", "typo", "web")
	if _, _, v := inspectRefs(); v != version {
		t.Fatalf("refused updates changed web: version %s, was %s", v, version)
	}

	// The rotation.
	cli.run("service", "update", "--secret-rm", "old", "--secret-rm", "new", "--secret-add", "source=new,target=db_password", "web")
	secrets, configs, _ = inspectRefs()
	if len(secrets) != 1 || secrets[0].SecretID != newID || secrets[0].SecretName != "new" || secrets[0].File.Name != "db_password" ||
		secrets[0].File.UID != "0" || secrets[0].File.Mode != 0o444 || len(configs) != 1 {
		t.Errorf("after the rotation: secrets %s, configs %s", show(secrets), show(configs))
	}
	if pretty := cli.run("service", "inspect", "--pretty", "web"); !strings.Contains(pretty, "\nSecrets:\n Target:\tdb_password\n  Source:\tnew\n") || strings.Contains(pretty, "Source:\told") {
		t.Errorf("service inspect --pretty after the rotation:\n%s", pretty)
	}
	after := serviceContainers(c, "web")
	if len(after) != 2 {
		t.Fatalf("after the rotation web runs %d containers; want 2", len(after))
	}
	for _, a := range after {
		for _, b := range before {
			if a.Pid == b.Pid || a.Task == b.Task {
				t.Errorf("container of task %s (pid %d) survived the rotation: a reference change must roll out new tasks", a.Task, a.Pid)
			}
		}
	}
	if got := cli.run("secret", "rm", "old"); got != "old\n" {
		t.Errorf("secret rm old after the rotation printed %q", got)
	}
	cli.fails("secret 'new' is in use by the following service: web", "secret", "rm", "new")
	cli.run("service", "update", "--config-rm", "app.conf", "web")
	cli.run("config", "rm", "app.conf")
	cli.run("service", "rm", "web")
	cli.run("secret", "rm", "new")
	if got := cli.run("secret", "ls", "-q"); got != "" {
		t.Errorf("at the end, secret ls -q = %q", got)
	}
	for i, v := range cli.values {
		if form := v.leakedIn(m.DaemonLog()); form != "" {
			t.Errorf("the daemon's log carries secret value %d (%s form)", i, form)
		}
	}
}
