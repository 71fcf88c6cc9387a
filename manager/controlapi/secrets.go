package controlapi

import (
	"context"
	"crypto/subtle"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

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

// ValidateSecretSpec checks a secret spec.
func ValidateSecretSpec(s *shoalv1.SecretSpec) error {
	var f fieldErrors
	if s == nil {
		f.add("secret", "a spec is required")
		return f.err()
	}
	validSecretName(&f, "secret.name", s.GetName())
	validLabels(&f, "secret.labels", s.GetLabels())
	validData(&f, "secret", len(s.GetData()), MaxSecretSize)
	return f.err()
}

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
	spec := clone(req.GetSpec())
	if err := ValidateSecretSpec(spec); err != nil {
		return nil, err
	}
	var taken bool
	s.Store.View(func(r store.ReadTx) {
		taken = len(store.ByName[*shoalv1.Secret](r, store.TableSecret, spec.GetName())) > 0
	})
	if taken {
		return nil, fmt.Errorf("secret %s already exists: choose another name, or remove it first (shoal secret rm %s): %w", spec.GetName(), spec.GetName(), errdefs.ErrAlreadyExists)
	}
	now := timestamppb.New(s.Clock.Now())
	sec := &shoalv1.Secret{Id: store.NewID(), Meta: &shoalv1.Meta{CreatedAt: now, UpdatedAt: now}, Spec: spec}
	idx, err := s.propose(ctx, create(sec))
	if err != nil {
		return nil, err
	}
	sec.Meta.Version = idx
	return &shoalv1.CreateSecretResponse{Secret: withoutData(sec)}, nil
}

func (s *Server) findSecret(ref string) (*shoalv1.Secret, error) {
	var sec *shoalv1.Secret
	var err error
	s.Store.View(func(r store.ReadTx) { sec, err = store.Find[*shoalv1.Secret](r, store.TableSecret, ref, "secret") })
	return sec, err
}

// GetSecret returns a secret, without its data, by ID, name or ID prefix.
func (s *Server) GetSecret(ctx context.Context, req *shoalv1.GetSecretRequest) (*shoalv1.GetSecretResponse, error) {
	sec, err := s.findSecret(req.GetSecretId())
	if err != nil {
		return nil, err
	}
	return &shoalv1.GetSecretResponse{Secret: withoutData(sec)}, nil
}

// ListSecrets returns every secret, without data, by name.
func (s *Server) ListSecrets(ctx context.Context, _ *shoalv1.ListSecretsRequest) (*shoalv1.ListSecretsResponse, error) {
	var all []*shoalv1.Secret
	s.Store.View(func(r store.ReadTx) { all = store.List[*shoalv1.Secret](r, store.TableSecret) })
	out := make([]*shoalv1.Secret, 0, len(all))
	for _, sec := range all {
		out = append(out, withoutData(sec))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetSpec().GetName() < out[j].GetSpec().GetName() })
	return &shoalv1.ListSecretsResponse{Secrets: out}, nil
}

// UpdateSecret changes a secret's labels, and nothing else: its name and
// data must be the stored ones (the data may be left out).
func (s *Server) UpdateSecret(ctx context.Context, req *shoalv1.UpdateSecretRequest) (*shoalv1.UpdateSecretResponse, error) {
	if req.GetVersion() == 0 {
		return nil, fmt.Errorf("secret.version: is required: read the secret (inspect) and send the version you read: %w", errdefs.ErrInvalid)
	}
	cur, err := s.findSecret(req.GetSecretId())
	if err != nil {
		return nil, err
	}
	spec := req.GetSpec()
	if spec == nil {
		return nil, fmt.Errorf("secret.spec: is required: %w", errdefs.ErrInvalid)
	}
	// Constant time: how long the refusal takes says nothing of how
	// much of the data matched.
	if spec.GetName() != cur.GetSpec().GetName() ||
		(len(spec.GetData()) > 0 && subtle.ConstantTimeCompare(spec.GetData(), cur.GetSpec().GetData()) != 1) {
		return nil, fmt.Errorf("only updates to Labels are allowed: secrets are immutable; create a new secret and swap it in with service update --secret-rm %s --secret-add NEW: %w",
			cur.GetSpec().GetName(), errdefs.ErrInvalid)
	}
	var f fieldErrors
	validLabels(&f, "secret.labels", spec.GetLabels())
	if err := f.err(); err != nil {
		return nil, err
	}
	next := clone(cur)
	next.Spec.Labels = clone(spec).GetLabels()
	next.Meta.UpdatedAt = timestamppb.New(s.Clock.Now())
	idx, err := s.propose(ctx, update(next, req.GetVersion()))
	if err != nil {
		return nil, err
	}
	next.Meta.Version = idx
	return &shoalv1.UpdateSecretResponse{Secret: withoutData(next)}, nil
}

// RemoveSecret deletes a secret that no service's spec uses and no task
// that is meant to run still uses.
func (s *Server) RemoveSecret(ctx context.Context, req *shoalv1.RemoveSecretRequest) (*shoalv1.RemoveSecretResponse, error) {
	sec, err := s.findSecret(req.GetSecretId())
	if err != nil {
		return nil, err
	}
	s.refsMu.Lock()
	defer s.refsMu.Unlock()
	if err := s.inUse("secret", sec.GetId(), sec.GetSpec().GetName(), secretIDs); err != nil {
		return nil, err
	}
	if _, err := s.propose(ctx, remove(sec, sec.GetMeta().GetVersion())); err != nil {
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
	var services []string
	running := map[string]int{}
	s.Store.View(func(r store.ReadTx) {
		names := map[string]string{}
		for _, svc := range store.List[*shoalv1.Service](r, store.TableService) {
			names[svc.GetId()] = svc.GetSpec().GetName()
			if uses(svc.GetSpec().GetTask().GetContainer()) {
				services = append(services, svc.GetSpec().GetName())
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
	return nil
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
