package controlapi

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// marker is test secret data that must never show up in an answer or an
// error.
var marker = []byte("s3cr3t-marker-7f1c")

func TestValidateSecretSpec(t *testing.T) {
	big := bytes.Repeat(marker, MaxSecretSize/len(marker)+1)
	for _, tc := range []struct {
		name string
		spec *shoalv1.SecretSpec
		want string // "" = valid
	}{
		{"minimal", &shoalv1.SecretSpec{Name: "pw", Data: []byte("x")}, ""},
		{"every allowed character", &shoalv1.SecretSpec{Name: "a.B-c_9", Data: marker}, ""},
		{"64 characters", &shoalv1.SecretSpec{Name: strings.Repeat("a", 64), Data: marker}, ""},
		{"largest", &shoalv1.SecretSpec{Name: "pw", Data: make([]byte, MaxSecretSize-1)}, ""},
		{"labels", &shoalv1.SecretSpec{Name: "pw", Data: marker, Labels: map[string]string{"team": "", "env": "prod"}}, ""},
		{"nil", nil, "secret: a spec is required"},
		{"no name", &shoalv1.SecretSpec{Data: marker}, "secret.name: name must be provided"},
		{"65 characters", &shoalv1.SecretSpec{Name: strings.Repeat("a", 65), Data: marker}, "only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]"},
		{"leading dash", &shoalv1.SecretSpec{Name: "-pw", Data: marker}, `invalid name "-pw"`},
		{"trailing dot", &shoalv1.SecretSpec{Name: "pw.", Data: marker}, `invalid name "pw."`},
		{"space", &shoalv1.SecretSpec{Name: "db pw", Data: marker}, `invalid name "db pw"`},
		{"slash", &shoalv1.SecretSpec{Name: "db/pw", Data: marker}, `invalid name "db/pw"`},
		{"not ascii", &shoalv1.SecretSpec{Name: "päss", Data: marker}, "invalid name"},
		{"empty data", &shoalv1.SecretSpec{Name: "pw"}, "secret.data: secret data must be larger than 0 and less than 512000 bytes, got 0 bytes"},
		{"500 KiB exactly", &shoalv1.SecretSpec{Name: "pw", Data: make([]byte, MaxSecretSize)}, "less than 512000 bytes, got 512000 bytes"},
		{"oversized", &shoalv1.SecretSpec{Name: "pw", Data: big}, "less than 512000 bytes"},
		{"bad label", &shoalv1.SecretSpec{Name: "pw", Data: marker, Labels: map[string]string{"a b": "x"}}, "secret.labels: label key"},
	} {
		err := ValidateSecretSpec(tc.spec)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: ValidateSecretSpec = %v; want valid", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: ValidateSecretSpec = %v; want an invalid-argument error with %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), string(marker)) {
			t.Errorf("%s: the error carries the secret's data", tc.name)
		}
	}
}

func TestValidateConfigSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec *shoalv1.ConfigSpec
		want string
	}{
		{"minimal", &shoalv1.ConfigSpec{Name: "nginx.conf", Data: []byte("x")}, ""},
		{"larger than a secret may be", &shoalv1.ConfigSpec{Name: "big", Data: make([]byte, MaxSecretSize+1)}, ""},
		{"largest", &shoalv1.ConfigSpec{Name: "big", Data: make([]byte, MaxConfigSize-1)}, ""},
		{"nil", nil, "config: a spec is required"},
		{"no name", &shoalv1.ConfigSpec{Data: []byte("x")}, "config.name: name must be provided"},
		{"bad name", &shoalv1.ConfigSpec{Name: "_x", Data: []byte("x")}, `invalid name "_x"`},
		{"empty", &shoalv1.ConfigSpec{Name: "c"}, "config.data: config data must be larger than 0 and less than 1024000 bytes, got 0 bytes"},
		{"oversized", &shoalv1.ConfigSpec{Name: "c", Data: make([]byte, MaxConfigSize)}, "less than 1024000 bytes, got 1024000 bytes"},
	} {
		err := ValidateConfigSpec(tc.spec)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: ValidateConfigSpec = %v; want valid", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: ValidateConfigSpec = %v; want an invalid-argument error with %q", tc.name, err, tc.want)
		}
	}
}

func mustCreateSecret(t *testing.T, s *Server, name string, data []byte) *shoalv1.Secret {
	t.Helper()
	resp, err := s.CreateSecret(context.Background(), &shoalv1.CreateSecretRequest{Spec: &shoalv1.SecretSpec{Name: name, Data: data}})
	if err != nil {
		t.Fatalf("CreateSecret(%s) = %v", name, err)
	}
	return resp.GetSecret()
}

func mustCreateConfig(t *testing.T, s *Server, name string, data []byte) *shoalv1.Config {
	t.Helper()
	resp, err := s.CreateConfig(context.Background(), &shoalv1.CreateConfigRequest{Spec: &shoalv1.ConfigSpec{Name: name, Data: data}})
	if err != nil {
		t.Fatalf("CreateConfig(%s) = %v", name, err)
	}
	return resp.GetConfig()
}

func storedSecret(s *Server, id string) *shoalv1.Secret {
	var sec *shoalv1.Secret
	s.Store.View(func(r store.ReadTx) { sec = store.Get[*shoalv1.Secret](r, store.TableSecret, id) })
	return sec
}

// Every answer of the secret API is without the data, which the store
// keeps.
func TestSecretDataNeverReturned(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	req := &shoalv1.CreateSecretRequest{Spec: &shoalv1.SecretSpec{Name: "db_password", Data: marker, Labels: map[string]string{"team": "blue"}}}
	created, err := s.CreateSecret(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(req.GetSpec().GetData(), marker) {
		t.Fatal("CreateSecret cleared the caller's request")
	}
	sec := created.GetSecret()
	if len(sec.GetId()) != 25 || sec.GetSpec().GetName() != "db_password" || sec.GetSpec().GetLabels()["team"] != "blue" ||
		sec.GetMeta().GetVersion() == 0 || !sec.GetMeta().GetCreatedAt().AsTime().Equal(testNow) {
		t.Errorf("CreateSecret = id %q name %q labels %v meta %v", sec.GetId(), sec.GetSpec().GetName(), sec.GetSpec().GetLabels(), sec.GetMeta())
	}
	if got := storedSecret(s, sec.GetId()).GetSpec().GetData(); !bytes.Equal(got, marker) {
		t.Fatalf("the store holds %d bytes of data; want the %d given", len(got), len(marker))
	}

	var answers []*shoalv1.Secret
	answers = append(answers, sec)
	for _, ref := range []string{sec.GetId(), "db_password", sec.GetId()[:5]} {
		got, err := s.GetSecret(ctx, &shoalv1.GetSecretRequest{SecretId: ref})
		if err != nil {
			t.Fatalf("GetSecret(%s) = %v", ref, err)
		}
		if got.GetSecret().GetId() != sec.GetId() {
			t.Errorf("GetSecret(%s) = %s; want %s", ref, got.GetSecret().GetId(), sec.GetId())
		}
		answers = append(answers, got.GetSecret())
	}
	list, err := s.ListSecrets(ctx, &shoalv1.ListSecretsRequest{})
	if err != nil || len(list.GetSecrets()) != 1 {
		t.Fatalf("ListSecrets = %d secrets, %v; want 1", len(list.GetSecrets()), err)
	}
	answers = append(answers, list.GetSecrets()...)
	up, err := s.UpdateSecret(ctx, &shoalv1.UpdateSecretRequest{SecretId: sec.GetId(), Version: sec.GetMeta().GetVersion(),
		Spec: &shoalv1.SecretSpec{Name: "db_password", Data: marker, Labels: map[string]string{"team": "red"}}})
	if err != nil {
		t.Fatalf("UpdateSecret with the same data = %v", err)
	}
	answers = append(answers, up.GetSecret())
	for i, a := range answers {
		if a.GetSpec().GetData() != nil {
			t.Errorf("answer %d carries %d bytes of data", i, len(a.GetSpec().GetData()))
		}
	}
	if got := storedSecret(s, sec.GetId()).GetSpec().GetData(); !bytes.Equal(got, marker) {
		t.Fatal("answering without the data cleared it in the store")
	}
}

func TestCreateSecretRefusals(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	first := mustCreateSecret(t, s, "pw", marker)
	before := r.proposalCount()
	for _, tc := range []struct {
		name string
		spec *shoalv1.SecretSpec
		cat  error
		want string
	}{
		{"duplicate", &shoalv1.SecretSpec{Name: "pw", Data: []byte("other")}, errdefs.ErrAlreadyExists, "secret pw already exists"},
		{"bad name", &shoalv1.SecretSpec{Name: "p w", Data: marker}, errdefs.ErrInvalid, "invalid name"},
		{"oversized", &shoalv1.SecretSpec{Name: "big", Data: bytes.Repeat(marker, MaxSecretSize)}, errdefs.ErrInvalid, "less than 512000 bytes"},
		{"no spec", nil, errdefs.ErrInvalid, "a spec is required"},
	} {
		_, err := s.CreateSecret(ctx, &shoalv1.CreateSecretRequest{Spec: tc.spec})
		if !errdefs.Is(err, tc.cat) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CreateSecret = %v; want %v with %q", tc.name, err, tc.cat, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), string(marker)) {
			t.Errorf("%s: the error carries the data", tc.name)
		}
	}
	if n := r.proposalCount(); n != before {
		t.Errorf("refused creates proposed %d entries", n-before)
	}
	if got := storedSecret(s, first.GetId()).GetSpec().GetData(); !bytes.Equal(got, marker) {
		t.Error("a refused duplicate changed the first secret's data")
	}
}

func TestUpdateSecretOnlyLabels(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	sec := mustCreateSecret(t, s, "pw", marker)
	upd := func(v uint64, spec *shoalv1.SecretSpec) (*shoalv1.UpdateSecretResponse, error) {
		return s.UpdateSecret(ctx, &shoalv1.UpdateSecretRequest{SecretId: "pw", Version: v, Spec: spec})
	}
	v := sec.GetMeta().GetVersion()
	before := r.proposalCount()
	for _, tc := range []struct {
		name    string
		version uint64
		spec    *shoalv1.SecretSpec
		cat     error
		want    string
	}{
		{"new data", v, &shoalv1.SecretSpec{Name: "pw", Data: []byte("new value")}, errdefs.ErrInvalid, "only updates to Labels are allowed"},
		{"data one byte off", v, &shoalv1.SecretSpec{Name: "pw", Data: append(append([]byte{}, marker[:len(marker)-1]...), 'X')}, errdefs.ErrInvalid, "only updates to Labels are allowed"},
		{"rename", v, &shoalv1.SecretSpec{Name: "pw2"}, errdefs.ErrInvalid, "only updates to Labels are allowed"},
		{"no version", 0, &shoalv1.SecretSpec{Name: "pw"}, errdefs.ErrInvalid, "secret.version: is required"},
		{"no spec", v, nil, errdefs.ErrInvalid, "secret.spec: is required"},
		{"bad label", v, &shoalv1.SecretSpec{Name: "pw", Labels: map[string]string{"": "x"}}, errdefs.ErrInvalid, "secret.labels"},
		{"stale version", v - 1, &shoalv1.SecretSpec{Name: "pw", Labels: map[string]string{"a": "b"}}, errdefs.ErrConflict, "changed by someone else"},
	} {
		_, err := upd(tc.version, tc.spec)
		if !errdefs.Is(err, tc.cat) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: UpdateSecret = %v; want %v with %q", tc.name, err, tc.cat, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), string(marker)) || strings.Contains(err.Error(), "new value")) {
			t.Errorf("%s: the error carries data", tc.name)
		}
	}
	if n := r.proposalCount(); n != before+1 { // only the stale one reached the store, which refused it
		t.Errorf("refused updates proposed %d entries; want 1 (the stale version, refused by the store)", n-before)
	}
	stored := storedSecret(s, sec.GetId())
	if !bytes.Equal(stored.GetSpec().GetData(), marker) || len(stored.GetSpec().GetLabels()) != 0 || stored.GetMeta().GetVersion() != v {
		t.Fatalf("refused updates changed the secret: labels %v version %d", stored.GetSpec().GetLabels(), stored.GetMeta().GetVersion())
	}
	// Labels change, with the data left out; the data stays.
	s.Clock.(interface{ Advance(time.Duration) }).Advance(time.Minute)
	got, err := upd(v, &shoalv1.SecretSpec{Name: "pw", Labels: map[string]string{"rotated": "2030"}})
	if err != nil {
		t.Fatalf("UpdateSecret(labels) = %v", err)
	}
	stored = storedSecret(s, sec.GetId())
	if stored.GetSpec().GetLabels()["rotated"] != "2030" || !bytes.Equal(stored.GetSpec().GetData(), marker) ||
		got.GetSecret().GetMeta().GetVersion() != stored.GetMeta().GetVersion() || !stored.GetMeta().GetUpdatedAt().AsTime().Equal(testNow.Add(time.Minute)) ||
		!stored.GetMeta().GetCreatedAt().AsTime().Equal(testNow) {
		t.Errorf("after a label update: labels %v, %d bytes of data, meta %v", stored.GetSpec().GetLabels(), len(stored.GetSpec().GetData()), stored.GetMeta())
	}
}

func TestConfigAPI(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	data := []byte("server { listen 80; }\n")
	cfg := mustCreateConfig(t, s, "nginx.conf", data)
	if !bytes.Equal(cfg.GetSpec().GetData(), data) {
		t.Errorf("CreateConfig answered %q; want its data", cfg.GetSpec().GetData())
	}
	got, err := s.GetConfig(ctx, &shoalv1.GetConfigRequest{ConfigId: "nginx.conf"})
	if err != nil || !bytes.Equal(got.GetConfig().GetSpec().GetData(), data) || got.GetConfig().GetId() != cfg.GetId() {
		t.Errorf("GetConfig = %v, %v; want the config with its data", got, err)
	}
	list, err := s.ListConfigs(ctx, &shoalv1.ListConfigsRequest{})
	if err != nil || len(list.GetConfigs()) != 1 || !bytes.Equal(list.GetConfigs()[0].GetSpec().GetData(), data) {
		t.Errorf("ListConfigs = %v, %v", list, err)
	}
	before := r.proposalCount()
	if _, err := s.CreateConfig(ctx, &shoalv1.CreateConfigRequest{Spec: &shoalv1.ConfigSpec{Name: "nginx.conf", Data: []byte("x")}}); !errdefs.Is(err, errdefs.ErrAlreadyExists) ||
		!strings.Contains(err.Error(), "config nginx.conf already exists") {
		t.Errorf("duplicate CreateConfig = %v", err)
	}
	if _, err := s.UpdateConfig(ctx, &shoalv1.UpdateConfigRequest{ConfigId: cfg.GetId(), Version: cfg.GetMeta().GetVersion(),
		Spec: &shoalv1.ConfigSpec{Name: "nginx.conf", Data: []byte("other")}}); !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "only updates to Labels are allowed") {
		t.Errorf("UpdateConfig(new data) = %v", err)
	}
	if n := r.proposalCount(); n != before {
		t.Errorf("refused calls proposed %d entries", n-before)
	}
	up, err := s.UpdateConfig(ctx, &shoalv1.UpdateConfigRequest{ConfigId: cfg.GetId(), Version: cfg.GetMeta().GetVersion(),
		Spec: &shoalv1.ConfigSpec{Name: "nginx.conf", Data: data, Labels: map[string]string{"v": "1"}}})
	if err != nil || up.GetConfig().GetSpec().GetLabels()["v"] != "1" || !bytes.Equal(up.GetConfig().GetSpec().GetData(), data) {
		t.Errorf("UpdateConfig(labels) = %v, %v", up, err)
	}
	if _, err := s.RemoveConfig(ctx, &shoalv1.RemoveConfigRequest{ConfigId: "nginx.conf"}); err != nil {
		t.Fatalf("RemoveConfig = %v", err)
	}
	if _, err := s.GetConfig(ctx, &shoalv1.GetConfigRequest{ConfigId: "nginx.conf"}); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetConfig after remove = %v; want not found", err)
	}
	if _, err := s.RemoveConfig(ctx, &shoalv1.RemoveConfigRequest{ConfigId: "nginx.conf"}); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second RemoveConfig = %v; want not found", err)
	}
}

func withSecrets(spec *shoalv1.ServiceSpec, refs ...*shoalv1.SecretReference) *shoalv1.ServiceSpec {
	spec.Task.Container.Secrets = refs
	return spec
}

func secretRef(name string) *shoalv1.SecretReference {
	return &shoalv1.SecretReference{SecretName: name}
}

// A secret in use by a service cannot be removed, in swarmkit's words,
// and the refusal changes nothing; nor while a task an update has not
// replaced yet still uses it; once nothing does, it goes.
func TestRemoveSecretInUse(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	old := mustCreateSecret(t, s, "old", marker)
	mustCreateSecret(t, s, "new", []byte("new value"))
	web := mustCreate(t, s, withSecrets(minimalSpec("web"), secretRef("old")))
	mustCreate(t, s, withSecrets(minimalSpec("api"), secretRef(old.GetId())))

	rm := func() error {
		_, err := s.RemoveSecret(ctx, &shoalv1.RemoveSecretRequest{SecretId: "old"})
		return err
	}
	before := r.proposalCount()
	if err := rm(); !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "secret 'old' is in use by the following services: api, web") {
		t.Fatalf("RemoveSecret(used by two) = %v", err)
	}
	if _, err := s.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: "api"}); err != nil {
		t.Fatal(err)
	}
	before++
	if err := rm(); !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "secret 'old' is in use by the following service: web") {
		t.Fatalf("RemoveSecret(used by one) = %v", err)
	}
	if n := r.proposalCount(); n != before {
		t.Errorf("refused removals proposed %d entries", n-before)
	}
	if storedSecret(s, old.GetId()) == nil {
		t.Fatal("a refused removal removed the secret")
	}

	// A task of web's first spec still runs while web moves to the new
	// secret.
	web = getService(t, s, web.GetId())
	task := &shoalv1.Task{Id: "t1", ServiceId: web.GetId(), ServiceName: "web", Slot: 1, Spec: web.GetSpec().GetTask(),
		DesiredState: shoalv1.TaskState_TASK_STATE_RUNNING, Status: &shoalv1.TaskStatus{State: shoalv1.TaskState_TASK_STATE_RUNNING}}
	seed(t, r, task)
	next := withSecrets(clone(web.GetSpec()), &shoalv1.SecretReference{SecretName: "new", File: &shoalv1.FileTarget{Name: "old"}})
	if _, err := s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: web.GetId(), Version: web.GetMeta().GetVersion(), Spec: next}); err != nil {
		t.Fatal(err)
	}
	if err := rm(); !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "secret 'old' is still used by 1 task of service web that an update has not replaced yet") {
		t.Fatalf("RemoveSecret(used by a running task) = %v", err)
	}
	// The update shuts it down: the secret may go.
	stopped := clone(task)
	stopped.DesiredState = shoalv1.TaskState_TASK_STATE_SHUTDOWN
	stopped.Status.State = shoalv1.TaskState_TASK_STATE_SHUTDOWN
	if _, err := r.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{update(stopped, 0)}}); err != nil {
		t.Fatal(err)
	}
	// While the update may still roll back to it (its monitor runs), the
	// previous spec holds it.
	if err := rm(); !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "secret 'old' is used by the previous spec of web, whose update can still roll back to it") {
		t.Fatalf("RemoveSecret(during the update) = %v", err)
	}
	web = getService(t, s, web.GetId())
	if web.GetUpdateStatus().GetState() != shoalv1.UpdateState_UPDATE_STATE_UPDATING {
		t.Fatalf("web's update is %v; want updating", web.GetUpdateStatus().GetState())
	}
	done := clone(web)
	done.UpdateStatus.State = shoalv1.UpdateState_UPDATE_STATE_COMPLETED
	if _, err := r.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{update(done, 0)}}); err != nil {
		t.Fatal(err)
	}
	if err := rm(); err != nil {
		t.Fatalf("RemoveSecret(no longer used) = %v", err)
	}
	if storedSecret(s, old.GetId()) != nil {
		t.Fatal("the secret is still in the store")
	}
	if err := rm(); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second RemoveSecret = %v; want not found", err)
	}
}

func TestRemoveConfigInUse(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	mustCreateConfig(t, s, "app.conf", []byte("a=1"))
	spec := minimalSpec("web")
	spec.Task.Container.Configs = []*shoalv1.ConfigReference{{ConfigName: "app.conf"}}
	mustCreate(t, s, spec)
	_, err := s.RemoveConfig(ctx, &shoalv1.RemoveConfigRequest{ConfigId: "app.conf"})
	if !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "config 'app.conf' is in use by the following service: web") {
		t.Fatalf("RemoveConfig(in use) = %v", err)
	}
}

// The check that a secret exists and the write of the service using it
// are one step against the secret's removal: a removal that arrives
// while the service is being written waits, then sees the service.
func TestRemoveSecretWaitsForServiceUsingIt(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	mustCreateSecret(t, s, "pw", marker)
	removed := make(chan error, 1)
	r.mu.Lock()
	r.beforePropose = func() {
		// CreateService has resolved pw and is proposing the service.
		go func() {
			_, err := s.RemoveSecret(ctx, &shoalv1.RemoveSecretRequest{SecretId: "pw"})
			removed <- err
		}()
		// A removal that does not wait ends at once; give a broken
		// implementation the time to show itself (a correct one waits
		// whatever this is).
		select {
		case err := <-removed:
			removed <- err
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.mu.Unlock()
	mustCreate(t, s, withSecrets(minimalSpec("web"), secretRef("pw")))
	if err := <-removed; !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "in use by the following service: web") {
		t.Fatalf("RemoveSecret during CreateService = %v; want refused as in use by web", err)
	}
}

// The tasks of a removed service do not hold its secrets: they are being
// stopped, and nothing will start them again.
func TestRemoveSecretAfterItsService(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	mustCreateSecret(t, s, "pw", marker)
	web := mustCreate(t, s, withSecrets(minimalSpec("web"), secretRef("pw")))
	seed(t, r, &shoalv1.Task{Id: "t1", ServiceId: web.GetId(), ServiceName: "web", Slot: 1, Spec: web.GetSpec().GetTask(),
		DesiredState: shoalv1.TaskState_TASK_STATE_RUNNING, Status: &shoalv1.TaskStatus{State: shoalv1.TaskState_TASK_STATE_RUNNING}})
	if _, err := s.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveSecret(ctx, &shoalv1.RemoveSecretRequest{SecretId: "pw"}); err != nil {
		t.Fatalf("RemoveSecret after its service was removed = %v", err)
	}
}
