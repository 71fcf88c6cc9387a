package controlapi

import (
	"context"
	"regexp"

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
func (s *Server) ListSecrets(ctx context.Context, req *shoalv1.ListSecretsRequest) (*shoalv1.ListSecretsResponse, error) {
	out, err := secretKind.listObjects(s, req.GetFilters())
	if err != nil {
		return nil, err
	}
	return &shoalv1.ListSecretsResponse{Secrets: out}, nil
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
