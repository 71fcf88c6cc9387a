// Package convert is the one translation layer between the Docker Engine
// API's types (github.com/moby/moby/api) and Shoal's specs. It is pure:
// no I/O, no clients. Every field of Docker's ServiceSpec that Shoal
// supports is mapped both ways; one it does not support is refused with an
// error naming it (errdefs.ErrInvalid, a 400), never dropped. Shoal's own
// fields that Docker has no place for travel in forms Docker's clients pass
// back unchanged: the placement strategy as the service label
// LabelPlacementStrategy, the node's HTTP and TCP probes as health check
// tests ["HTTP", url] and ["TCP", port].
package convert

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// unsupported is the error for a Docker field Shoal does not implement.
func unsupported(field, why string) error {
	if why == "" {
		why = "leave it unset"
	}
	return fmt.Errorf("%s is not supported by Shoal: %s: %w", field, why, errdefs.ErrInvalid)
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
}

// Meta is an object's version and times in Docker's form.
func Meta(m *shoalv1.Meta) swarm.Meta {
	return swarm.Meta{
		Version:   swarm.Version{Index: m.GetVersion()},
		CreatedAt: ts(m.GetCreatedAt()),
		UpdatedAt: ts(m.GetUpdatedAt()),
	}
}

func ts(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func tsPtr(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime()
	return &v
}

func dur(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func durPtr(d *time.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(*d)
}

func fromDur(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func fromDurPtr(d *durationpb.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	v := d.AsDuration()
	return &v
}

func labels(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func u64(v uint64) *uint64 { return &v }
