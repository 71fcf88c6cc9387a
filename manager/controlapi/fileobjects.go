package controlapi

import (
	"context"
	"crypto/subtle"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/orchestrator"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Secrets and configs are one kind of object twice over (swarmkit's):
// a name, labels and data, immutable but for the labels. fileKind holds
// what differs between the two, and the methods below are the one
// implementation of their Create, Get, List, Update and Remove calls.

// fileSpec is a secret's or a config's spec.
type fileSpec interface {
	proto.Message
	GetName() string
	GetLabels() map[string]string
	GetData() []byte
}

// fileObject is a stored secret or config.
type fileObject[S fileSpec] interface {
	store.Object
	GetSpec() S
}

// fileKind describes secrets or configs to the shared code.
type fileKind[O fileObject[S], S fileSpec] struct {
	table string
	// word is "secret" or "config": the field names and messages say it.
	word    string
	maxSize int // the data must be smaller than this
	// newObject is the object to store for a new spec.
	newObject func(id string, meta *shoalv1.Meta, spec S) O
	// setLabels replaces the labels of o's spec.
	setLabels func(o O, labels map[string]string)
	// answer is what a response carries of o: a secret has no data
	// there, a config is whole.
	answer func(o O) O
	// refs are the IDs of the objects of this kind a container uses.
	refs func(c *shoalv1.ContainerSpec) []string
}

// validate checks a spec: its name, labels and the size of its data.
func (k *fileKind[O, S]) validate(spec S) error {
	var f fieldErrors
	if !spec.ProtoReflect().IsValid() {
		f.add(k.word, "a spec is required")
		return f.err()
	}
	validSecretName(&f, k.word+".name", spec.GetName())
	validLabels(&f, k.word+".labels", spec.GetLabels())
	validData(&f, k.word, len(spec.GetData()), k.maxSize)
	return f.err()
}

// createObject stores a new object of spec, whose name must be free.
func (k *fileKind[O, S]) createObject(ctx context.Context, s *Server, spec S) (O, error) {
	var zero O
	spec = clone(spec)
	if err := k.validate(spec); err != nil {
		return zero, err
	}
	var taken bool
	s.Store.View(func(r store.ReadTx) { taken = len(store.ByName[O](r, k.table, spec.GetName())) > 0 })
	if taken {
		return zero, fmt.Errorf("%s %s already exists: choose another name, or remove it first (shoal %s rm %s): %w",
			k.word, spec.GetName(), k.word, spec.GetName(), errdefs.ErrAlreadyExists)
	}
	now := timestamppb.New(s.Clock.Now())
	o := k.newObject(store.NewID(), &shoalv1.Meta{CreatedAt: now, UpdatedAt: now}, spec)
	idx, err := s.propose(ctx, create(o))
	if err != nil {
		return zero, err
	}
	o.GetMeta().Version = idx
	return k.answer(o), nil
}

// find returns the stored object (with its data) by ID, name or ID
// prefix.
func (k *fileKind[O, S]) find(s *Server, ref string) (O, error) {
	var o O
	var err error
	s.Store.View(func(r store.ReadTx) { o, err = store.Find[O](r, k.table, ref, k.word) })
	return o, err
}

// lookup resolves service references to objects of this kind in r.
func (k *fileKind[O, S]) lookup(r store.ReadTx) lookupRef {
	return func(ref string) (refObject, error) {
		o, err := store.Find[O](r, k.table, ref, k.word)
		return refObject{o.GetId(), o.GetSpec().GetName()}, err
	}
}

// getObject answers for one object by ID, name or ID prefix.
func (k *fileKind[O, S]) getObject(s *Server, ref string) (O, error) {
	o, err := k.find(s, ref)
	if err != nil {
		var zero O
		return zero, err
	}
	return k.answer(o), nil
}

// listObjects answers for every object the filters keep, by name.
func (k *fileKind[O, S]) listObjects(s *Server, in []*shoalv1.Filter) ([]O, error) {
	f, err := parseFilters(in, fileFilters...)
	if err != nil {
		return nil, err
	}
	var all []O
	s.Store.View(func(r store.ReadTx) { all = store.List[O](r, k.table) })
	out := make([]O, 0, len(all))
	for _, o := range all {
		if f.file(o.GetId(), o.GetSpec().GetName(), o.GetSpec().GetLabels()) {
			out = append(out, k.answer(o))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetSpec().GetName() < out[j].GetSpec().GetName() })
	return out, nil
}

// updateObject changes an object's labels, and nothing else: the name
// and data of spec must be the stored ones (the data may be left out).
func (k *fileKind[O, S]) updateObject(ctx context.Context, s *Server, ref string, version uint64, spec S) (O, error) {
	var zero O
	if version == 0 {
		return zero, fmt.Errorf("%s.version: is required: read the %s (inspect) and send the version you read: %w", k.word, k.word, errdefs.ErrInvalid)
	}
	cur, err := k.find(s, ref)
	if err != nil {
		return zero, err
	}
	if !spec.ProtoReflect().IsValid() {
		return zero, fmt.Errorf("%s.spec: is required: %w", k.word, errdefs.ErrInvalid)
	}
	// Constant time: how long the refusal takes says nothing of how
	// much of the data matched.
	if spec.GetName() != cur.GetSpec().GetName() ||
		(len(spec.GetData()) > 0 && subtle.ConstantTimeCompare(spec.GetData(), cur.GetSpec().GetData()) != 1) {
		return zero, fmt.Errorf("only updates to Labels are allowed: %ss are immutable; create a new %s and swap it in with service update --%s-rm %s --%s-add NEW: %w",
			k.word, k.word, k.word, cur.GetSpec().GetName(), k.word, errdefs.ErrInvalid)
	}
	var f fieldErrors
	validLabels(&f, k.word+".labels", spec.GetLabels())
	if err := f.err(); err != nil {
		return zero, err
	}
	next := clone(cur)
	k.setLabels(next, clone(spec).GetLabels())
	next.GetMeta().UpdatedAt = timestamppb.New(s.Clock.Now())
	idx, err := s.propose(ctx, update(next, version))
	if err != nil {
		return zero, err
	}
	next.GetMeta().Version = idx
	return k.answer(next), nil
}

// removeObject deletes an object that no service's spec uses and no
// task that is meant to run still uses.
func (k *fileKind[O, S]) removeObject(ctx context.Context, s *Server, ref string) error {
	o, err := k.find(s, ref)
	if err != nil {
		return err
	}
	s.refsMu.Lock()
	defer s.refsMu.Unlock()
	if err := s.inUse(k.word, o.GetId(), o.GetSpec().GetName(), k.refs); err != nil {
		return err
	}
	_, err = s.propose(ctx, remove(o, o.GetMeta().GetVersion()))
	return err
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
