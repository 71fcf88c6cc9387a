package controlapi

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/orchestrator"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Secrets and configs, as swarmkit's: immutable but for their labels,
// named like swarmkit names them, refused removal while a service uses
// them. A secret's data goes into the store (encrypted at rest by the
// Raft layer) and never comes back out of this API: every response is
// stripped of it, and no error message or log line carries it.

// MaxSecretSize is swarmkit's limit on a secret's data: a secret must be
// smaller than this.
const MaxSecretSize = 500 * 1024

// MaxConfigSize is swarmkit's limit on a config's data.
const MaxConfigSize = 1000 * 1024

// secretNameRE is swarmkit's rule for secret and config names: letters,
// digits, '-', '_' and '.', starting and ending with a letter or digit.
var secretNameRE = regexp.MustCompile(`^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$`)

// validSecretName checks a secret's or config's name, in swarmkit's
// words.
func validSecretName(f *fieldErrors, field, name string) {
	switch {
	case name == "":
		f.add(field, "name must be provided")
	case len(name) > 64 || !secretNameRE.MatchString(name):
		f.add(field, "invalid name %q, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]", name)
	}
}

// validData checks the size of a secret's or config's data; it never
// looks at, or says anything of, the bytes themselves.
func validData(f *fieldErrors, kind string, n, max int) {
	if n < 1 || n >= max {
		f.add(kind+".data", "%s data must be larger than 0 and less than %d bytes, got %d bytes", kind, max, n)
	}
}

// secretKind is secrets to the shared code of fileobjects.go.
var secretKind = &fileKind[*shoalv1.Secret, *shoalv1.SecretSpec]{
	table:   store.TableSecret,
	word:    "secret",
	maxSize: MaxSecretSize,
	newObject: func(id string, meta *shoalv1.Meta, spec *shoalv1.SecretSpec) *shoalv1.Secret {
		return &shoalv1.Secret{Id: id, Meta: meta, Spec: spec}
	},
	setLabels: func(o *shoalv1.Secret, labels map[string]string) { o.Spec.Labels = labels },
	answer:    withoutData,
	refs:      secretIDs,
}

// ValidateSecretSpec checks a secret spec.
func ValidateSecretSpec(s *shoalv1.SecretSpec) error { return secretKind.validate(s) }

// withoutData is a copy of sec without its data: what every response
// carries.
func withoutData(sec *shoalv1.Secret) *shoalv1.Secret {
	out := clone(sec)
	if out.Spec != nil {
		out.Spec.Data = nil
	}
	return out
}

// CreateSecret stores a new secret; the response has no data.
func (s *Server) CreateSecret(ctx context.Context, req *shoalv1.CreateSecretRequest) (*shoalv1.CreateSecretResponse, error) {
	sec, err := secretKind.createObject(ctx, s, req.GetSpec())
	if err != nil {
		return nil, err
	}
	return &shoalv1.CreateSecretResponse{Secret: sec}, nil
}

// GetSecret returns a secret, without its data, by ID, name or ID prefix.
func (s *Server) GetSecret(ctx context.Context, req *shoalv1.GetSecretRequest) (*shoalv1.GetSecretResponse, error) {
	sec, err := secretKind.getObject(s, req.GetSecretId())
	if err != nil {
		return nil, err
	}
	return &shoalv1.GetSecretResponse{Secret: sec}, nil
}

// ListSecrets returns every secret, without data, by name.
func (s *Server) ListSecrets(ctx context.Context, _ *shoalv1.ListSecretsRequest) (*shoalv1.ListSecretsResponse, error) {
	return &shoalv1.ListSecretsResponse{Secrets: secretKind.listObjects(s)}, nil
}

// UpdateSecret changes a secret's labels, and nothing else: its name and
// data must be the stored ones (the data may be left out).
func (s *Server) UpdateSecret(ctx context.Context, req *shoalv1.UpdateSecretRequest) (*shoalv1.UpdateSecretResponse, error) {
	sec, err := secretKind.updateObject(ctx, s, req.GetSecretId(), req.GetVersion(), req.GetSpec())
	if err != nil {
		return nil, err
	}
	return &shoalv1.UpdateSecretResponse{Secret: sec}, nil
}

// RemoveSecret deletes a secret that no service's spec uses and no task
// that is meant to run still uses.
func (s *Server) RemoveSecret(ctx context.Context, req *shoalv1.RemoveSecretRequest) (*shoalv1.RemoveSecretResponse, error) {
	if err := secretKind.removeObject(ctx, s, req.GetSecretId()); err != nil {
		return nil, err
	}
	return &shoalv1.RemoveSecretResponse{}, nil
}

// secretIDs and configIDs are the objects a container spec references.
func secretIDs(c *shoalv1.ContainerSpec) []string {
	var ids []string
	for _, r := range c.GetSecrets() {
		ids = append(ids, r.GetSecretId())
	}
	return ids
}

func configIDs(c *shoalv1.ContainerSpec) []string {
	var ids []string
	for _, r := range c.GetConfigs() {
		ids = append(ids, r.GetConfigId())
	}
	return ids
}

// inUse refuses the removal of a secret or config (kind) with id while a
// service's spec references it (swarmkit's rule and words), or while a
// task of a service that still exists, meant to run and not ended, still
// does: a rolling update that has not replaced it yet (or a rollback to
// it) needs the object to start that task again.
func (s *Server) inUse(kind, id, name string, refs func(*shoalv1.ContainerSpec) []string) error {
	uses := func(c *shoalv1.ContainerSpec) bool {
		for _, r := range refs(c) {
			if r == id {
				return true
			}
		}
		return false
	}
	var services, rollback []string
	running := map[string]int{}
	s.Store.View(func(r store.ReadTx) {
		names := map[string]string{}
		for _, svc := range store.List[*shoalv1.Service](r, store.TableService) {
			names[svc.GetId()] = svc.GetSpec().GetName()
			if uses(svc.GetSpec().GetTask().GetContainer()) {
				services = append(services, svc.GetSpec().GetName())
			} else if updating(svc) && uses(svc.GetPreviousSpec().GetTask().GetContainer()) {
				rollback = append(rollback, svc.GetSpec().GetName())
			}
		}
		for _, t := range store.List[*shoalv1.Task](r, store.TableTask) {
			// A removed service's tasks are on their way out: no update
			// or rollback will start them again.
			n, ok := names[t.GetServiceId()]
			if ok && t.GetDesiredState() <= shoalv1.TaskState_TASK_STATE_RUNNING && !orchestrator.Terminal(t.GetStatus().GetState()) && uses(t.GetSpec().GetContainer()) {
				running[n]++
			}
		}
	})
	if len(services) > 0 {
		sort.Strings(services)
		word := "services"
		if len(services) == 1 {
			word = "service"
		}
		return fmt.Errorf("%s '%s' is in use by the following %s: %s: remove it from them first (service update --%s-rm %s): %w",
			kind, name, word, strings.Join(services, ", "), kind, name, errdefs.ErrFailedPrecond)
	}
	if len(running) > 0 {
		var parts []string
		for _, n := range sortedKeys(running) {
			word := "tasks"
			if running[n] == 1 {
				word = "task"
			}
			parts = append(parts, fmt.Sprintf("%d %s of service %s", running[n], word, n))
		}
		return fmt.Errorf("%s '%s' is still used by %s that an update has not replaced yet: wait for the update to finish (service ps), then remove it: %w",
			kind, name, strings.Join(parts, ", "), errdefs.ErrFailedPrecond)
	}
	if len(rollback) > 0 {
		sort.Strings(rollback)
		return fmt.Errorf("%s '%s' is used by the previous spec of %s, whose update can still roll back to it: wait for the update to complete (service inspect shows its state), then remove it: %w",
			kind, name, strings.Join(rollback, ", "), errdefs.ErrFailedPrecond)
	}
	return nil
}

// updating reports whether a service's update (or rollback) is still in
// progress: its monitor may yet roll it back (or it is paused, and may be
// rolled back by hand) to the previous spec.
func updating(svc *shoalv1.Service) bool {
	switch svc.GetUpdateStatus().GetState() {
	case shoalv1.UpdateState_UPDATE_STATE_UPDATING, shoalv1.UpdateState_UPDATE_STATE_PAUSED:
		return true
	}
	return false
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
