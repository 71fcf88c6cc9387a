package controlapi

import (
	"bytes"
	"context"
	"fmt"
	"sort"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Configs are secrets whose data is returned (see secrets.go).

// ValidateConfigSpec checks a config spec.
func ValidateConfigSpec(s *shoalv1.ConfigSpec) error {
	var f fieldErrors
	if s == nil {
		f.add("config", "a spec is required")
		return f.err()
	}
	validSecretName(&f, "config.name", s.GetName())
	validLabels(&f, "config.labels", s.GetLabels())
	validData(&f, "config", len(s.GetData()), MaxConfigSize)
	return f.err()
}

// CreateConfig stores a new config.
func (s *Server) CreateConfig(ctx context.Context, req *shoalv1.CreateConfigRequest) (*shoalv1.CreateConfigResponse, error) {
	spec := clone(req.GetSpec())
	if err := ValidateConfigSpec(spec); err != nil {
		return nil, err
	}
	var taken bool
	s.Store.View(func(r store.ReadTx) {
		taken = len(store.ByName[*shoalv1.Config](r, store.TableConfig, spec.GetName())) > 0
	})
	if taken {
		return nil, fmt.Errorf("config %s already exists: choose another name, or remove it first (shoal config rm %s): %w", spec.GetName(), spec.GetName(), errdefs.ErrAlreadyExists)
	}
	now := timestamppb.New(s.Clock.Now())
	cfg := &shoalv1.Config{Id: store.NewID(), Meta: &shoalv1.Meta{CreatedAt: now, UpdatedAt: now}, Spec: spec}
	idx, err := s.propose(ctx, create(cfg))
	if err != nil {
		return nil, err
	}
	cfg.Meta.Version = idx
	return &shoalv1.CreateConfigResponse{Config: cfg}, nil
}

func (s *Server) findConfig(ref string) (*shoalv1.Config, error) {
	var cfg *shoalv1.Config
	var err error
	s.Store.View(func(r store.ReadTx) { cfg, err = store.Find[*shoalv1.Config](r, store.TableConfig, ref, "config") })
	return cfg, err
}

// GetConfig returns a config, with its data, by ID, name or ID prefix.
func (s *Server) GetConfig(ctx context.Context, req *shoalv1.GetConfigRequest) (*shoalv1.GetConfigResponse, error) {
	cfg, err := s.findConfig(req.GetConfigId())
	if err != nil {
		return nil, err
	}
	return &shoalv1.GetConfigResponse{Config: cfg}, nil
}

// ListConfigs returns every config by name.
func (s *Server) ListConfigs(ctx context.Context, _ *shoalv1.ListConfigsRequest) (*shoalv1.ListConfigsResponse, error) {
	var out []*shoalv1.Config
	s.Store.View(func(r store.ReadTx) { out = store.List[*shoalv1.Config](r, store.TableConfig) })
	sort.Slice(out, func(i, j int) bool { return out[i].GetSpec().GetName() < out[j].GetSpec().GetName() })
	return &shoalv1.ListConfigsResponse{Configs: out}, nil
}

// UpdateConfig changes a config's labels, and nothing else.
func (s *Server) UpdateConfig(ctx context.Context, req *shoalv1.UpdateConfigRequest) (*shoalv1.UpdateConfigResponse, error) {
	if req.GetVersion() == 0 {
		return nil, fmt.Errorf("config.version: is required: read the config (inspect) and send the version you read: %w", errdefs.ErrInvalid)
	}
	cur, err := s.findConfig(req.GetConfigId())
	if err != nil {
		return nil, err
	}
	spec := req.GetSpec()
	if spec == nil {
		return nil, fmt.Errorf("config.spec: is required: %w", errdefs.ErrInvalid)
	}
	if spec.GetName() != cur.GetSpec().GetName() || (len(spec.GetData()) > 0 && !bytes.Equal(spec.GetData(), cur.GetSpec().GetData())) {
		return nil, fmt.Errorf("only updates to Labels are allowed: configs are immutable; create a new config and swap it in with service update --config-rm %s --config-add NEW: %w",
			cur.GetSpec().GetName(), errdefs.ErrInvalid)
	}
	var f fieldErrors
	validLabels(&f, "config.labels", spec.GetLabels())
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
	return &shoalv1.UpdateConfigResponse{Config: next}, nil
}

// RemoveConfig deletes a config no service or running task uses.
func (s *Server) RemoveConfig(ctx context.Context, req *shoalv1.RemoveConfigRequest) (*shoalv1.RemoveConfigResponse, error) {
	cfg, err := s.findConfig(req.GetConfigId())
	if err != nil {
		return nil, err
	}
	s.refsMu.Lock()
	defer s.refsMu.Unlock()
	if err := s.inUse("config", cfg.GetId(), cfg.GetSpec().GetName(), configIDs); err != nil {
		return nil, err
	}
	if _, err := s.propose(ctx, remove(cfg, cfg.GetMeta().GetVersion())); err != nil {
		return nil, err
	}
	return &shoalv1.RemoveConfigResponse{}, nil
}
