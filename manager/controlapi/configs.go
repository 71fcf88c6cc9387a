package controlapi

import (
	"context"

	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Configs are secrets whose data is returned (see secrets.go and
// fileobjects.go).

// configKind is configs to the shared code of fileobjects.go.
var configKind = &fileKind[*shoalv1.Config, *shoalv1.ConfigSpec]{
	table:   store.TableConfig,
	word:    "config",
	maxSize: MaxConfigSize,
	newObject: func(id string, meta *shoalv1.Meta, spec *shoalv1.ConfigSpec) *shoalv1.Config {
		return &shoalv1.Config{Id: id, Meta: meta, Spec: spec}
	},
	setLabels: func(o *shoalv1.Config, labels map[string]string) { o.Spec.Labels = labels },
	answer:    func(c *shoalv1.Config) *shoalv1.Config { return c },
	refs:      configIDs,
}

// ValidateConfigSpec checks a config spec.
func ValidateConfigSpec(s *shoalv1.ConfigSpec) error { return configKind.validate(s) }

// CreateConfig stores a new config.
func (s *Server) CreateConfig(ctx context.Context, req *shoalv1.CreateConfigRequest) (*shoalv1.CreateConfigResponse, error) {
	cfg, err := configKind.createObject(ctx, s, req.GetSpec())
	if err != nil {
		return nil, err
	}
	return &shoalv1.CreateConfigResponse{Config: cfg}, nil
}

// GetConfig returns a config, with its data, by ID, name or ID prefix.
func (s *Server) GetConfig(ctx context.Context, req *shoalv1.GetConfigRequest) (*shoalv1.GetConfigResponse, error) {
	cfg, err := configKind.getObject(s, req.GetConfigId())
	if err != nil {
		return nil, err
	}
	return &shoalv1.GetConfigResponse{Config: cfg}, nil
}

// ListConfigs returns every config by name.
func (s *Server) ListConfigs(ctx context.Context, req *shoalv1.ListConfigsRequest) (*shoalv1.ListConfigsResponse, error) {
	out, err := configKind.listObjects(s, req.GetFilters())
	if err != nil {
		return nil, err
	}
	return &shoalv1.ListConfigsResponse{Configs: out}, nil
}

// UpdateConfig changes a config's labels, and nothing else.
func (s *Server) UpdateConfig(ctx context.Context, req *shoalv1.UpdateConfigRequest) (*shoalv1.UpdateConfigResponse, error) {
	cfg, err := configKind.updateObject(ctx, s, req.GetConfigId(), req.GetVersion(), req.GetSpec())
	if err != nil {
		return nil, err
	}
	return &shoalv1.UpdateConfigResponse{Config: cfg}, nil
}

// RemoveConfig deletes a config no service or running task uses.
func (s *Server) RemoveConfig(ctx context.Context, req *shoalv1.RemoveConfigRequest) (*shoalv1.RemoveConfigResponse, error) {
	if err := configKind.removeObject(ctx, s, req.GetConfigId()); err != nil {
		return nil, err
	}
	return &shoalv1.RemoveConfigResponse{}, nil
}
