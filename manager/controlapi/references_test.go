package controlapi

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/orchestrator"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// fakeObjects is a lookup over fixed objects: by ID, name or unique ID
// prefix, as the store's.
func fakeObjects(objs ...refObject) lookupRef {
	return func(ref string) (refObject, error) {
		var match []refObject
		for _, o := range objs {
			if o.id == ref || o.name == ref {
				return o, nil
			}
			if strings.HasPrefix(o.id, ref) {
				match = append(match, o)
			}
		}
		if len(match) == 1 {
			return match[0], nil
		}
		if len(match) > 1 {
			return refObject{}, fmt.Errorf("%q is ambiguous: %w", ref, errdefs.ErrInvalid)
		}
		return refObject{}, fmt.Errorf("%q: %w", ref, errdefs.ErrNotFound)
	}
}

func file(name, uid, gid string, mode uint32) *shoalv1.FileTarget {
	return &shoalv1.FileTarget{Name: name, Uid: uid, Gid: gid, Mode: mode}
}

func TestResolveReferences(t *testing.T) {
	secrets := fakeObjects(refObject{"sec1aaaa", "db_password"}, refObject{"sec2bbbb", "api_key"}, refObject{"sec3bbbc", "other"})
	configs := fakeObjects(refObject{"cfg1aaaa", "nginx.conf"})
	type refs struct {
		secrets []*shoalv1.SecretReference
		configs []*shoalv1.ConfigReference
	}
	for _, tc := range []struct {
		name string
		in   refs
		want refs   // when valid
		err  string // "" = valid
	}{
		{
			name: "by name, defaults filled",
			in:   refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password"}}, configs: []*shoalv1.ConfigReference{{ConfigName: "nginx.conf"}}},
			want: refs{secrets: []*shoalv1.SecretReference{{SecretId: "sec1aaaa", SecretName: "db_password", File: file("db_password", "0", "0", 0o444)}},
				configs: []*shoalv1.ConfigReference{{ConfigId: "cfg1aaaa", ConfigName: "nginx.conf", File: file("/nginx.conf", "0", "0", 0o444)}}},
		},
		{
			name: "by ID and by ID prefix, given in the name field",
			in:   refs{secrets: []*shoalv1.SecretReference{{SecretId: "sec1aaaa"}, {SecretName: "sec2b", File: &shoalv1.FileTarget{Name: "key"}}}},
			want: refs{secrets: []*shoalv1.SecretReference{
				{SecretId: "sec1aaaa", SecretName: "db_password", File: file("db_password", "0", "0", 0o444)},
				{SecretId: "sec2bbbb", SecretName: "api_key", File: file("key", "0", "0", 0o444)}}},
		},
		{
			name: "ID and its own name",
			in:   refs{secrets: []*shoalv1.SecretReference{{SecretId: "sec1aaaa", SecretName: "db_password"}}},
			want: refs{secrets: []*shoalv1.SecretReference{{SecretId: "sec1aaaa", SecretName: "db_password", File: file("db_password", "0", "0", 0o444)}}},
		},
		{
			name: "every file field given; paths cleaned; a relative config target made absolute",
			in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: file("/etc/app//pw", "1000", "50", 0o400)}, {SecretName: "api_key", File: file("./keys/api", "", "", 0)}},
				configs: []*shoalv1.ConfigReference{{ConfigName: "nginx.conf", File: file("etc/nginx/nginx.conf", "101", "101", 0o440)}}},
			want: refs{secrets: []*shoalv1.SecretReference{
				{SecretId: "sec1aaaa", SecretName: "db_password", File: file("/etc/app/pw", "1000", "50", 0o400)},
				{SecretId: "sec2bbbb", SecretName: "api_key", File: file("keys/api", "0", "0", 0o444)}},
				configs: []*shoalv1.ConfigReference{{ConfigId: "cfg1aaaa", ConfigName: "nginx.conf", File: file("/etc/nginx/nginx.conf", "101", "101", 0o440)}}},
		},
		{
			name: "one secret at two targets",
			in:   refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password"}, {SecretName: "db_password", File: &shoalv1.FileTarget{Name: "pw2"}}}},
			want: refs{secrets: []*shoalv1.SecretReference{
				{SecretId: "sec1aaaa", SecretName: "db_password", File: file("db_password", "0", "0", 0o444)},
				{SecretId: "sec1aaaa", SecretName: "db_password", File: file("pw2", "0", "0", 0o444)}}},
		},
		{name: "unknown secret", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "nope"}}},
			err: `secret not found: nope; service.secrets[0]: secret "nope" does not exist: create it first (shoal secret create nope FILE)`},
		{name: "two unknown", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "a"}, {SecretName: "db_password"}, {SecretName: "b"}}},
			err: "secrets not found: a, b"},
		{name: "unknown config", in: refs{configs: []*shoalv1.ConfigReference{{ConfigName: "nope"}}}, err: "config not found: nope"},
		{name: "unknown ID", in: refs{secrets: []*shoalv1.SecretReference{{SecretId: "zzz"}}}, err: "secret not found: zzz"},
		{name: "removed since", in: refs{secrets: []*shoalv1.SecretReference{{SecretId: "zzz", SecretName: "gone"}}}, err: "secret not found: gone; service.secrets[0]: secret gone (zzz) does not exist any more"},
		{name: "names nothing", in: refs{secrets: []*shoalv1.SecretReference{{File: &shoalv1.FileTarget{Name: "x"}}}}, err: "service.secrets[0]: names no secret"},
		{name: "ambiguous prefix", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "sec"}}}, err: "ambiguous"},
		{name: "ID of another name", in: refs{secrets: []*shoalv1.SecretReference{{SecretId: "sec1aaaa", SecretName: "api_key"}}},
			err: `secret_id sec1aaaa is secret "db_password", not "api_key"`},
		{name: "same target twice", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: &shoalv1.FileTarget{Name: "pw"}}, {SecretName: "api_key", File: &shoalv1.FileTarget{Name: "pw"}}}},
			err: "service.secrets[1]: secret 'db_password' and secret 'api_key' have a conflicting target: '/run/secrets/pw'"},
		{name: "same target, relative and absolute", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: &shoalv1.FileTarget{Name: "pw"}}, {SecretName: "api_key", File: &shoalv1.FileTarget{Name: "/run/secrets/pw"}}}},
			err: "have a conflicting target: '/run/secrets/pw'"},
		{name: "same target twice by default", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password"}, {SecretId: "sec1aaaa"}}},
			err: "secret 'db_password' and secret 'db_password' have a conflicting target"},
		{name: "a secret and a config at one path", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: &shoalv1.FileTarget{Name: "/app.conf"}}},
			configs: []*shoalv1.ConfigReference{{ConfigName: "nginx.conf", File: &shoalv1.FileTarget{Name: "app.conf"}}}},
			err: "service.configs[0]: secret 'db_password' and config 'nginx.conf' have a conflicting target: '/app.conf'"},
		{name: "dot dot", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: &shoalv1.FileTarget{Name: "../../etc/passwd"}}}}, err: "must not contain '..'"},
		{name: "dot dot inside", in: refs{configs: []*shoalv1.ConfigReference{{ConfigName: "nginx.conf", File: &shoalv1.FileTarget{Name: "/etc/x/../../y"}}}}, err: "must not contain '..'"},
		{name: "blank target", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: &shoalv1.FileTarget{Name: "  "}}}}, err: "is blank"},
		{name: "the secrets directory", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: &shoalv1.FileTarget{Name: "/run/secrets/"}}}}, err: "is a directory"},
		{name: "dot", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: &shoalv1.FileTarget{Name: "./"}}}}, err: "is a directory"},
		{name: "root", in: refs{configs: []*shoalv1.ConfigReference{{ConfigName: "nginx.conf", File: &shoalv1.FileTarget{Name: "/"}}}}, err: "is a directory"},
		{name: "NUL", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: &shoalv1.FileTarget{Name: "a\x00b"}}}}, err: "NUL"},
		{name: "uid name", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: file("", "www-data", "", 0)}}}, err: `uid "www-data" must be a number`},
		{name: "negative gid", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "db_password", File: file("", "", "-1", 0)}}}, err: `gid "-1" must be a number`},
		{name: "setuid mode", in: refs{configs: []*shoalv1.ConfigReference{{ConfigName: "nginx.conf", File: file("", "", "", 0o4755)}}}, err: "mode 04755 has bits other than the permission bits"},
		{name: "every problem at once", in: refs{secrets: []*shoalv1.SecretReference{{SecretName: "nope"}, {SecretName: "db_password", File: file("..", "x", "", 0)}}},
			err: `secret not found: nope; service.secrets[0]: secret "nope" does not exist`},
	} {
		c := &shoalv1.ContainerSpec{Secrets: tc.in.secrets, Configs: tc.in.configs}
		err := resolveReferences(c, secrets, configs)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errdefs.Is(err, errdefs.ErrInvalid) {
				t.Errorf("%s: resolveReferences = %v; want an invalid-argument error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: resolveReferences = %v; want success", tc.name, err)
			continue
		}
		want := &shoalv1.ContainerSpec{Secrets: tc.want.secrets, Configs: tc.want.configs}
		if !proto.Equal(c, want) {
			t.Errorf("%s: resolveReferences made\n%v\nwant\n%v", tc.name, c, want)
		}
	}
}

// Resolving what was already resolved changes nothing: a service
// updated without touching its references keeps them as they are, and
// its tasks stay up to date.
func TestResolveReferencesIdempotent(t *testing.T) {
	secrets := fakeObjects(refObject{"sec1aaaa", "db_password"})
	configs := fakeObjects(refObject{"cfg1aaaa", "nginx.conf"})
	c := &shoalv1.ContainerSpec{
		Secrets: []*shoalv1.SecretReference{{SecretName: "db_password"}, {SecretName: "sec1", File: file("/etc/pw", "", "7", 0o400)}},
		Configs: []*shoalv1.ConfigReference{{ConfigName: "nginx.conf", File: file("conf/../x", "", "", 0)}},
	}
	c.Configs[0].File.Name = "conf/x"
	if err := resolveReferences(c, secrets, configs); err != nil {
		t.Fatal(err)
	}
	again := clone(c)
	if err := resolveReferences(again, secrets, configs); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(c, again) {
		t.Errorf("resolving twice changed the references:\n%v\n%v", c, again)
	}
}

// CreateService stores the exact IDs and names with the defaults; an
// unknown secret creates nothing; a change of references is a spec
// change that makes the tasks outdated, so it rolls out.
func TestServiceReferences(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	old := mustCreateSecret(t, s, "old", marker)
	nw := mustCreateSecret(t, s, "new", []byte("new value"))
	cfg := mustCreateConfig(t, s, "app.conf", []byte("a=1"))

	before := r.proposalCount()
	_, err := s.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: withSecrets(minimalSpec("web"), secretRef("old"), secretRef("missing"))})
	if !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "secret not found: missing") {
		t.Fatalf("CreateService(unknown secret) = %v", err)
	}
	if r.proposalCount() != before || getService(t, s, "web") != nil {
		t.Fatal("a refused create changed the store")
	}

	spec := withSecrets(minimalSpec("web"), secretRef("old"))
	spec.Task.Container.Configs = []*shoalv1.ConfigReference{{ConfigName: cfg.GetId()[:6], File: &shoalv1.FileTarget{Name: "etc/app.conf", Mode: 0o440}}}
	req := &shoalv1.CreateServiceRequest{Spec: spec}
	sent := clone(req)
	svc := mustCreate(t, s, spec)
	if !proto.Equal(req, sent) {
		t.Error("CreateService changed the caller's request")
	}
	stored := getService(t, s, svc.GetId()).GetSpec().GetTask().GetContainer()
	wantSecrets := []*shoalv1.SecretReference{{SecretId: old.GetId(), SecretName: "old", File: file("old", "0", "0", 0o444)}}
	wantConfigs := []*shoalv1.ConfigReference{{ConfigId: cfg.GetId(), ConfigName: "app.conf", File: file("/etc/app.conf", "0", "0", 0o440)}}
	if !proto.Equal(&shoalv1.ContainerSpec{Secrets: stored.GetSecrets(), Configs: stored.GetConfigs()}, &shoalv1.ContainerSpec{Secrets: wantSecrets, Configs: wantConfigs}) {
		t.Errorf("stored references %v %v; want %v %v", stored.GetSecrets(), stored.GetConfigs(), wantSecrets, wantConfigs)
	}

	// A task of the current spec is up to date; after the rotation it is
	// not, and the update starts rolling.
	cur := getService(t, s, svc.GetId())
	task := &shoalv1.Task{Id: "t1", ServiceId: cur.GetId(), Spec: cur.GetSpec().GetTask(), Endpoint: cur.GetSpec().GetEndpoint()}
	if !orchestrator.UpToDate(cur, task) {
		t.Fatal("a task of the current spec is not up to date")
	}
	// An update that leaves the references alone is no change.
	same, err := s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: cur.GetId(), Version: cur.GetMeta().GetVersion(), Spec: clone(cur.GetSpec())})
	if err != nil {
		t.Fatal(err)
	}
	if !orchestrator.UpToDate(same.GetService(), task) || same.GetService().GetPreviousSpec() != nil {
		t.Error("an update that changes nothing made the tasks outdated")
	}
	cur = same.GetService()
	next := clone(cur.GetSpec())
	next.Task.Container.Secrets = []*shoalv1.SecretReference{{SecretName: "new", File: &shoalv1.FileTarget{Name: "db_password"}}}
	up, err := s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: cur.GetId(), Version: cur.GetMeta().GetVersion(), Spec: next})
	if err != nil {
		t.Fatal(err)
	}
	got := up.GetService()
	if ref := got.GetSpec().GetTask().GetContainer().GetSecrets(); len(ref) != 1 || ref[0].GetSecretId() != nw.GetId() || ref[0].GetFile().GetName() != "db_password" {
		t.Errorf("after the rotation the references are %v", ref)
	}
	if orchestrator.UpToDate(got, task) {
		t.Error("a task of the old references is still up to date")
	}
	if st := got.GetUpdateStatus().GetState(); st != shoalv1.UpdateState_UPDATE_STATE_UPDATING {
		t.Errorf("update status after the rotation = %v; want updating", st)
	}

	// An update naming an unknown secret changes nothing.
	cur = getService(t, s, svc.GetId())
	bad := clone(cur.GetSpec())
	bad.Task.Container.Secrets = append(bad.Task.Container.Secrets, secretRef("gone"))
	before = r.proposalCount()
	if _, err := s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: cur.GetId(), Version: cur.GetMeta().GetVersion(), Spec: bad}); !errdefs.Is(err, errdefs.ErrInvalid) ||
		!strings.Contains(err.Error(), "secret not found: gone") {
		t.Fatalf("UpdateService(unknown secret) = %v", err)
	}
	if r.proposalCount() != before || !proto.Equal(getService(t, s, svc.GetId()), cur) {
		t.Error("a refused update changed the service")
	}

	// Once the update completed (the orchestrator's word), old may go;
	// a rollback by hand to the spec that used it is then refused.
	done := clone(cur)
	done.UpdateStatus.State = shoalv1.UpdateState_UPDATE_STATE_COMPLETED
	if _, err := r.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{update(done, 0)}}); err != nil {
		t.Fatal(err)
	}
	cur = getService(t, s, svc.GetId())
	if _, err := s.RemoveSecret(ctx, &shoalv1.RemoveSecretRequest{SecretId: "old"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: cur.GetId(), Version: cur.GetMeta().GetVersion(), Rollback: true})
	if !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "secret not found: old;") || !strings.Contains(err.Error(), "does not exist any more") {
		t.Fatalf("rollback to a removed secret = %v", err)
	}
}
