package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

var testData = []byte("hunter2-\x00-binary\xff")

func TestReadObjectData(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("full", testData)
	empty := write("empty", nil)
	atLimit := write("limit", bytes.Repeat([]byte{'a'}, 2*maxSecretSize))
	over := write("over", bytes.Repeat(testData, 2*maxSecretSize/len(testData)+1))
	for _, tc := range []struct {
		name  string
		in    []byte
		file  string
		want  []byte
		error string
	}{
		{"file", nil, full, testData, ""},
		{"stdin", testData, "-", testData, ""},
		{"stdin at the read limit (the manager judges the size)", bytes.Repeat([]byte{'a'}, 2*maxSecretSize), "-", bytes.Repeat([]byte{'a'}, 2*maxSecretSize), ""},
		{"file at the read limit", nil, atLimit, bytes.Repeat([]byte{'a'}, 2*maxSecretSize), ""},
		{"no file", nil, "", nil, "secret file is required"},
		{"empty stdin", nil, "-", nil, "error reading from STDIN: data is empty"},
		{"empty file", nil, empty, nil, "error reading from " + empty + ": data is empty"},
		{"missing file", nil, filepath.Join(dir, "nope"), nil, "error reading from " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"a directory", nil, dir, nil, "error reading from " + dir},
		{"huge file", nil, over, nil, "more than 1024000 bytes: secret data must be less than 512000 bytes"},
		{"huge stdin", bytes.Repeat(testData, 2*maxSecretSize/len(testData)+1), "-", nil, "error reading from STDIN: more than 1024000 bytes"},
	} {
		got, err := readObjectData(bytes.NewReader(tc.in), tc.file, "secret", maxSecretSize)
		if tc.error != "" {
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("%s: readObjectData = %v; want an error with %q", tc.name, err, tc.error)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: the error carries the data", tc.name)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: readObjectData = %d bytes, %v; want the %d bytes given", tc.name, len(got), err, len(tc.want))
		}
	}
}

// objectServer is a control API of secrets and configs in memory: what
// the CLI sends is recorded, and it answers as the manager does (no
// secret data in answers).
type objectServer struct {
	shoalv1.UnimplementedControlServiceServer
	mu       sync.Mutex
	secrets  []*shoalv1.Secret
	configs  []*shoalv1.Config
	received []proto.Message
	services map[string]*shoalv1.Service
}

func (s *objectServer) record(m proto.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = append(s.received, proto.Clone(m))
}

func (s *objectServer) CreateSecret(_ context.Context, req *shoalv1.CreateSecretRequest) (*shoalv1.CreateSecretResponse, error) {
	s.record(req)
	sec := &shoalv1.Secret{Id: "sec" + req.GetSpec().GetName(), Meta: &shoalv1.Meta{Version: 1}, Spec: proto.Clone(req.GetSpec()).(*shoalv1.SecretSpec)}
	sec.Spec.Data = nil
	return &shoalv1.CreateSecretResponse{Secret: sec}, nil
}

func (s *objectServer) find(ref string) *shoalv1.Secret {
	for _, sec := range s.secrets {
		if sec.GetId() == ref || sec.GetSpec().GetName() == ref {
			return sec
		}
	}
	return nil
}

func (s *objectServer) GetSecret(_ context.Context, req *shoalv1.GetSecretRequest) (*shoalv1.GetSecretResponse, error) {
	if sec := s.find(req.GetSecretId()); sec != nil {
		return &shoalv1.GetSecretResponse{Secret: sec}, nil
	}
	return nil, status.Errorf(codes.NotFound, "secret %q: not found", req.GetSecretId())
}

func (s *objectServer) ListSecrets(context.Context, *shoalv1.ListSecretsRequest) (*shoalv1.ListSecretsResponse, error) {
	return &shoalv1.ListSecretsResponse{Secrets: s.secrets}, nil
}

func (s *objectServer) RemoveSecret(_ context.Context, req *shoalv1.RemoveSecretRequest) (*shoalv1.RemoveSecretResponse, error) {
	s.record(req)
	if s.find(req.GetSecretId()) == nil {
		return nil, status.Errorf(codes.NotFound, "secret %q: not found", req.GetSecretId())
	}
	return &shoalv1.RemoveSecretResponse{}, nil
}

func (s *objectServer) GetConfig(_ context.Context, req *shoalv1.GetConfigRequest) (*shoalv1.GetConfigResponse, error) {
	for _, c := range s.configs {
		if c.GetId() == req.GetConfigId() || c.GetSpec().GetName() == req.GetConfigId() {
			return &shoalv1.GetConfigResponse{Config: c}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "config %q: not found", req.GetConfigId())
}

func (s *objectServer) GetService(_ context.Context, req *shoalv1.GetServiceRequest) (*shoalv1.GetServiceResponse, error) {
	return &shoalv1.GetServiceResponse{Service: s.services[req.GetServiceId()]}, nil
}

func (s *objectServer) UpdateService(_ context.Context, req *shoalv1.UpdateServiceRequest) (*shoalv1.UpdateServiceResponse, error) {
	s.record(req)
	return &shoalv1.UpdateServiceResponse{Service: &shoalv1.Service{Id: req.GetServiceId(), Spec: req.GetSpec()}}, nil
}

func (s *objectServer) CreateService(_ context.Context, req *shoalv1.CreateServiceRequest) (*shoalv1.CreateServiceResponse, error) {
	s.record(req)
	return &shoalv1.CreateServiceResponse{Service: &shoalv1.Service{Id: "svc1", Spec: req.GetSpec()}}, nil
}

func runCLI(t *testing.T, host string, stdin []byte, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runWithStdin(context.Background(), append([]string{"-H", host}, args...), bytes.NewReader(stdin), &out, &errOut)
	if err != nil {
		err = cleanError(err)
	}
	return out.String() + errOut.String(), err
}

// secret create sends exactly the bytes of stdin or of the file, prints
// only the ID, and never shows what it read.
func TestSecretCreateSendsTheData(t *testing.T) {
	srv := &objectServer{}
	host := serveControl(t, srv)
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, testData, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"secret", "create", "--label", "team=blue", "-l", "env", "db_password", "-"},
		{"secret", "create", "db_password", file},
	} {
		srv.received = nil
		out, err := runCLI(t, host, testData, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out != "secdb_password\n" {
			t.Errorf("%v printed %q; want the ID alone", args, out)
		}
		if len(srv.received) != 1 {
			t.Fatalf("%v sent %d requests", args, len(srv.received))
		}
		spec := srv.received[0].(*shoalv1.CreateSecretRequest).GetSpec()
		if spec.GetName() != "db_password" || !bytes.Equal(spec.GetData(), testData) {
			t.Errorf("%v sent name %q and %d bytes; want db_password and the %d bytes given", args, spec.GetName(), len(spec.GetData()), len(testData))
		}
		if args[2] == "--label" && (spec.GetLabels()["team"] != "blue" || len(spec.GetLabels()) != 2) {
			t.Errorf("%v sent labels %v", args, spec.GetLabels())
		}
	}
	// Bad command lines are refused before anything is sent.
	srv.received = nil
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"secret", "create"}, "'shoal secret create' requires at least 1 and at most 2 arguments"},
		{[]string{"secret", "create", "a", "b", "c"}, "requires at least 1 and at most 2 arguments"},
		{[]string{"secret", "create", "a"}, "secret file is required"},
		{[]string{"secret", "create", "a", "-"}, "error reading from STDIN: data is empty"},
		{[]string{"secret", "create", "--label", "=x", "a", file}, `--label "=x": want key=value`},
		{[]string{"config", "create", "c", "/nonexistent/file"}, "error reading from /nonexistent/file: no such file or directory"},
	} {
		if _, err := runCLI(t, host, nil, tc.args...); err == nil || !strings.Contains(Message(err), tc.want) {
			t.Errorf("%v = %v; want an error with %q", tc.args, err, tc.want)
		}
	}
	if len(srv.received) != 0 {
		t.Errorf("refused command lines sent %d requests", len(srv.received))
	}
}

func TestSecretLsAndInspectOutput(t *testing.T) {
	created := timestamppb.New(time.Now().Add(-3 * time.Hour))
	updated := timestamppb.New(time.Now().Add(-2 * time.Minute))
	srv := &objectServer{secrets: []*shoalv1.Secret{
		{Id: "zzzsecretid0000000000000b", Meta: &shoalv1.Meta{Version: 9, CreatedAt: created, UpdatedAt: updated}, Spec: &shoalv1.SecretSpec{Name: "b_key"}},
		{Id: "aaasecretid0000000000000a", Meta: &shoalv1.Meta{Version: 8, CreatedAt: created, UpdatedAt: created}, Spec: &shoalv1.SecretSpec{Name: "a_pw", Labels: map[string]string{"team": "blue", "flag": ""}}},
	}}
	host := serveControl(t, srv)
	out, err := runCLI(t, host, nil, "secret", "ls")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID NAME DRIVER CREATED UPDATED" ||
		strings.Join(strings.Fields(lines[1]), " ") != "aaasecretid0000000000000a a_pw 3 hours ago 3 hours ago" ||
		strings.Join(strings.Fields(lines[2]), " ") != "zzzsecretid0000000000000b b_key 3 hours ago 2 minutes ago" {
		t.Errorf("secret ls:\n%s", out)
	}
	if out, _ := runCLI(t, host, nil, "secret", "ls", "-q"); out != "aaasecretid0000000000000a\nzzzsecretid0000000000000b\n" {
		t.Errorf("secret ls -q:\n%s", out)
	}
	if out, _ := runCLI(t, host, nil, "secret", "ls", "--format", "{{.Name}} {{.Labels}}"); out != "a_pw flag=,team=blue\nb_key \n" {
		t.Errorf("secret ls --format:\n%s", out)
	}
	out, err = runCLI(t, host, nil, "secret", "inspect", "--pretty", "a_pw")
	if err != nil {
		t.Fatal(err)
	}
	want := "ID:              aaasecretid0000000000000a\nName:              a_pw\nLabels:\n - flag\n - team=blue\nDriver:            \nCreated at:        " +
		created.AsTime().UTC().Format("2006-01-02 15:04:05.999999999 -0700 MST") + "\nUpdated at:        " +
		created.AsTime().UTC().Format("2006-01-02 15:04:05.999999999 -0700 MST") + "\n"
	if out != want {
		t.Errorf("secret inspect --pretty:\n%s\nwant\n%s", out, want)
	}
	if _, err := runCLI(t, host, nil, "secret", "inspect", "--pretty", "--format", "{{.ID}}", "a_pw"); err == nil ||
		!strings.Contains(err.Error(), "cannot supply extra formatting options to the pretty template") {
		t.Errorf("inspect --pretty --format = %v", err)
	}
	if out, _ := runCLI(t, host, nil, "secret", "inspect", "--format", "{{.Spec.Name}} {{.Meta.Version}}", "b_key", "a_pw"); out != "b_key 9\na_pw 8\n" {
		t.Errorf("secret inspect --format:\n%s", out)
	}
	// rm tries every one, as docker's, and reports the failures together.
	out, err = runCLI(t, host, nil, "secret", "rm", "nope", "a_pw", "gone")
	if out != "a_pw\n" || err == nil || err.Error() != "secret \"nope\": not found\nsecret \"gone\": not found" {
		t.Errorf("secret rm nope a_pw gone = %q, %v", out, err)
	}
}

func TestConfigInspectPrettyShowsData(t *testing.T) {
	ts := timestamppb.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	srv := &objectServer{configs: []*shoalv1.Config{{Id: "cfg1", Meta: &shoalv1.Meta{CreatedAt: ts, UpdatedAt: ts},
		Spec: &shoalv1.ConfigSpec{Name: "nginx.conf", Data: []byte("server {}\n")}}}}
	host := serveControl(t, srv)
	out, err := runCLI(t, host, nil, "config", "inspect", "--pretty", "nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := "ID:\t\t\tcfg1\nName:\t\t\tnginx.conf\nCreated at:            \t2030-01-02 03:04:05 +0000 UTC\nUpdated at:            \t2030-01-02 03:04:05 +0000 UTC\nData:\nserver {}\n\n"
	if out != want {
		t.Errorf("config inspect --pretty = %q; want %q", out, want)
	}
}

func TestParseFileRef(t *testing.T) {
	for _, tc := range []struct {
		in     string
		source string
		file   *shoalv1.FileTarget
		err    string
	}{
		{in: "db_password", source: "db_password"},
		{in: "source=db_password", source: "db_password"},
		{in: "src=db_password,target=pw", source: "db_password", file: &shoalv1.FileTarget{Name: "pw"}},
		{in: "Source=x,TARGET=/etc/app/pw,uid=1000,gid=50,mode=0400", source: "x", file: &shoalv1.FileTarget{Name: "/etc/app/pw", Uid: "1000", Gid: "50", Mode: 0o400}},
		{in: "source=x,mode=0x124", source: "x", file: &shoalv1.FileTarget{Mode: 0o444}},
		{in: "source=x,mode=400", source: "x", file: &shoalv1.FileTarget{Mode: 400}}, // docker's: a mode without its 0 is decimal
		{in: `"source=a,b",target=t`, source: "a,b", file: &shoalv1.FileTarget{Name: "t"}},
		{in: "", err: "source is required"},
		{in: "target=pw", err: "source is required"},
		{in: "source=", err: "source is required"},
		{in: "source=x,target=", err: "target is empty"},
		{in: "source=x,owner=1", err: "invalid field in secret request: owner"},
		{in: "source=x,uid", err: "invalid field 'uid' must be a key=value pair"},
		{in: "source=x,=1", err: "invalid field '=1' must be a key=value pair"},
		{in: "source=x,mode=rw", err: "invalid mode specified: invalid syntax"},
		{in: "source=x,mode=0", err: "mode 0 would leave the file readable by root only"},
		{in: `source="x`, err: "--secret"},
	} {
		got, err := parseFileRef("--secret", "secret", tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "--secret ") {
				t.Errorf("parseFileRef(%q) = %v; want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got.source != tc.source || !proto.Equal(got.file, tc.file) {
			t.Errorf("parseFileRef(%q) = %q %v, %v; want %q %v", tc.in, got.source, got.file, err, tc.source, tc.file)
		}
	}
}

func TestUpdateSecretsFlags(t *testing.T) {
	known := map[string]objectRef{"old": {"id-old", "old"}, "id-old": {"id-old", "old"}, "unused": {"id-unused", "unused"}, "id-unused": {"id-unused", "unused"}}
	resolve := func(ref string) (objectRef, error) {
		if o, ok := known[ref]; ok {
			return o, nil
		}
		return objectRef{}, fmt.Errorf("secret %q: not found", ref) // as cleanError leaves the manager's answer
	}
	cur := func() []*shoalv1.SecretReference {
		return []*shoalv1.SecretReference{
			{SecretId: "id-old", SecretName: "old", File: &shoalv1.FileTarget{Name: "db_password", Uid: "0", Gid: "0", Mode: 0o444}},
			{SecretId: "id-keep", SecretName: "keep", File: &shoalv1.FileTarget{Name: "keep", Uid: "0", Gid: "0", Mode: 0o444}},
		}
	}
	keep := cur()[1]
	for _, tc := range []struct {
		name    string
		add, rm []string
		want    []*shoalv1.SecretReference
		err     string
	}{
		{name: "rotation at the same target", add: []string{"source=new,target=db_password"}, rm: []string{"old"},
			want: []*shoalv1.SecretReference{keep, {SecretName: "new", File: &shoalv1.FileTarget{Name: "db_password"}}}},
		{name: "rm by ID", rm: []string{"id-old"}, want: []*shoalv1.SecretReference{keep}},
		{name: "rm by an ID prefix the service does not name", rm: []string{"id-old"}, want: []*shoalv1.SecretReference{keep}},
		{name: "rm of an existing secret the service does not use: nothing", rm: []string{"unused"}, want: cur()},
		{name: "nothing given keeps all", want: cur()},
		{name: "add only appends", add: []string{"x"}, want: append(cur(), &shoalv1.SecretReference{SecretName: "x"})},
		{name: "rm of a secret that does not exist", rm: []string{"typo"}, err: `--secret-rm typo: secret "typo": not found`},
		{name: "bad add", add: []string{"target=x"}, err: "--secret-add \"target=x\": source is required"},
	} {
		got, err := updateSecrets(cur(), tc.add, tc.rm, resolve)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: updateSecrets = %v; want an error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !proto.Equal(&shoalv1.ContainerSpec{Secrets: got}, &shoalv1.ContainerSpec{Secrets: tc.want}) {
			t.Errorf("%s: updateSecrets = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	// Configs the same way.
	cfgs, err := updateConfigs([]*shoalv1.ConfigReference{{ConfigId: "c1", ConfigName: "app.conf"}}, []string{"source=app2.conf,target=/etc/app.conf"}, []string{"app.conf"}, resolve)
	if err != nil || len(cfgs) != 1 || cfgs[0].GetConfigName() != "app2.conf" || cfgs[0].GetFile().GetName() != "/etc/app.conf" {
		t.Errorf("updateConfigs = %v, %v", cfgs, err)
	}
}

// service create and update send the references as the flags give
// them; the manager resolves them.
func TestServiceSecretFlags(t *testing.T) {
	srv := &objectServer{
		secrets: []*shoalv1.Secret{{Id: "id-old", Spec: &shoalv1.SecretSpec{Name: "old"}}},
		services: map[string]*shoalv1.Service{"web": {Id: "svc1", Meta: &shoalv1.Meta{Version: 4}, Spec: &shoalv1.ServiceSpec{Name: "web",
			Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "img",
				Secrets: []*shoalv1.SecretReference{{SecretId: "id-old", SecretName: "old", File: &shoalv1.FileTarget{Name: "db_password", Uid: "0", Gid: "0", Mode: 0o444}}},
				Configs: []*shoalv1.ConfigReference{{ConfigId: "id-c", ConfigName: "app.conf", File: &shoalv1.FileTarget{Name: "/app.conf", Uid: "0", Gid: "0", Mode: 0o444}}},
			}}}}},
	}
	host := serveControl(t, srv)
	if _, err := runCLI(t, host, nil, "service", "create", "-d", "--name", "api", "--secret", "old", "--secret", "source=old,target=/etc/pw,mode=0400",
		"--config", "source=app.conf,target=/etc/app.conf", "img"); err != nil {
		t.Fatal(err)
	}
	c := srv.received[0].(*shoalv1.CreateServiceRequest).GetSpec().GetTask().GetContainer()
	want := &shoalv1.ContainerSpec{Secrets: []*shoalv1.SecretReference{{SecretName: "old"}, {SecretName: "old", File: &shoalv1.FileTarget{Name: "/etc/pw", Mode: 0o400}}},
		Configs: []*shoalv1.ConfigReference{{ConfigName: "app.conf", File: &shoalv1.FileTarget{Name: "/etc/app.conf"}}}}
	if !proto.Equal(&shoalv1.ContainerSpec{Secrets: c.GetSecrets(), Configs: c.GetConfigs()}, want) {
		t.Errorf("service create sent %v %v", c.GetSecrets(), c.GetConfigs())
	}
	if _, err := runCLI(t, host, nil, "service", "create", "-d", "--secret", "source=old,bogus=1", "img"); err == nil || !strings.Contains(err.Error(), "invalid field in secret request: bogus") {
		t.Errorf("service create with a bad --secret = %v", err)
	}

	if _, err := runCLI(t, host, nil, "service", "update", "-d", "--secret-rm", "old", "--secret-add", "source=new,target=db_password", "--config-rm", "app.conf", "web"); err != nil {
		t.Fatal(err)
	}
	up := srv.received[len(srv.received)-1].(*shoalv1.UpdateServiceRequest)
	c = up.GetSpec().GetTask().GetContainer()
	if up.GetVersion() != 4 || len(c.GetConfigs()) != 0 || len(c.GetSecrets()) != 1 || c.GetSecrets()[0].GetSecretName() != "new" ||
		c.GetSecrets()[0].GetFile().GetName() != "db_password" || c.GetSecrets()[0].GetSecretId() != "" {
		t.Errorf("service update sent version %d, secrets %v, configs %v", up.GetVersion(), c.GetSecrets(), c.GetConfigs())
	}
}

// service inspect --pretty shows docker's Configs and Secrets blocks.
func TestPrettyServiceSecrets(t *testing.T) {
	s := &shoalv1.Service{Id: "svc1", Spec: &shoalv1.ServiceSpec{Name: "web", Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "img",
		Secrets: []*shoalv1.SecretReference{{SecretId: "s1", SecretName: "new", File: &shoalv1.FileTarget{Name: "db_password"}}},
		Configs: []*shoalv1.ConfigReference{{ConfigId: "c1", ConfigName: "app.conf", File: &shoalv1.FileTarget{Name: "/etc/app.conf"}}},
	}}}}
	var b strings.Builder
	prettyService(&b, s, nil, time.Now())
	want := "\n Image:\t\timg\nConfigs:\n Target:\t/etc/app.conf\n  Source:\tapp.conf\nSecrets:\n Target:\tdb_password\n  Source:\tnew\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("service inspect --pretty lacks %q:\n%s", want, b.String())
	}
}
