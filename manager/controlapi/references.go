package controlapi

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/filetarget"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// A service's secret and config references, as a request gives them
// (each naming its object by name, ID or ID prefix, its file target
// optional) and as they are stored: both the exact ID and the name of
// the immutable object, and a complete file target. Swarm's CLI does
// this resolution on the client; here the control API does it, so every
// client gets the same rules.

// refObject is a secret or config as a reference resolves to it.
type refObject struct{ id, name string }

// lookupRef finds a secret or config by ID, name or ID prefix; an error
// of category ErrNotFound means there is none.
type lookupRef func(ref string) (refObject, error)

// resolveReferences resolves and completes the secret and config
// references of c in place, checking each: the object exists (swarm's
// "secret not found: NAME"), the target is a clean path, owner and
// mode are sane, and no two files land on the same path. It reports
// every problem at once, field by field; on error c may be half done and
// must be dropped.
func resolveReferences(c *shoalv1.ContainerSpec, secrets, configs lookupRef) error {
	var f fieldErrors
	targets := map[string]string{} // container path → the reference that has it
	sk := &refKind{word: "secret", lookup: secrets}
	ck := &refKind{word: "config", lookup: configs, config: true}
	for i, r := range c.GetSecrets() {
		if obj, ok := sk.resolve(&f, fmt.Sprintf("service.secrets[%d]", i), r.GetSecretId(), r.GetSecretName(), &r.File, targets); ok {
			r.SecretId, r.SecretName = obj.id, obj.name
		}
	}
	for i, r := range c.GetConfigs() {
		if obj, ok := ck.resolve(&f, fmt.Sprintf("service.configs[%d]", i), r.GetConfigId(), r.GetConfigName(), &r.File, targets); ok {
			r.ConfigId, r.ConfigName = obj.id, obj.name
		}
	}
	// Swarm's words first, then the field-precise details.
	var head []string
	for _, k := range []*refKind{sk, ck} {
		if len(k.missing) > 0 {
			head = append(head, notFound(k.word, k.missing))
		}
	}
	if len(head) > 0 {
		f = append(fieldErrors{strings.Join(head, "; ")}, f...)
	}
	return f.err()
}

// refKind is what resolving a reference needs of secrets or of configs.
type refKind struct {
	word   string // "secret" or "config"
	lookup lookupRef
	// config: a relative target is made absolute (docker mounts a
	// config relative to /, so its default target is /NAME), where a
	// secret's is under /run/secrets (its default /run/secrets/NAME).
	config  bool
	missing []string // the references that name no object, as named
}

// resolve resolves the reference at field (id, name, file) and
// completes its file target, checking it: ok says the object was found
// (the caller records it in the reference); every problem goes to f.
func (k *refKind) resolve(f *fieldErrors, field, id, name string, file **shoalv1.FileTarget, targets map[string]string) (refObject, bool) {
	obj, ok := resolveOne(f, field, k.word, id, name, k.lookup, &k.missing)
	if !ok {
		return refObject{}, false
	}
	if *file == nil {
		*file = &shoalv1.FileTarget{}
	}
	if (*file).Name == "" {
		(*file).Name = obj.name // a config's is made /NAME by checkTarget
	}
	if p, ok := checkTarget(f, field, *file, k.config); ok {
		checkOwner(f, field, *file)
		claim(f, field, targets, p, fmt.Sprintf("%s '%s'", k.word, obj.name))
	}
	return obj, true
}

func notFound(kind string, names []string) string {
	word := kind
	if len(names) > 1 {
		word += "s"
	}
	return fmt.Sprintf("%s not found: %s", word, strings.Join(names, ", "))
}

// resolveOne finds the object a reference names: by its ID when it has
// one (and then the name, if given, must be that object's), else by its
// name.
func resolveOne(f *fieldErrors, field, kind, id, name string, lookup lookupRef, missing *[]string) (refObject, bool) {
	ref := id
	if ref == "" {
		ref = name
	}
	if strings.TrimSpace(ref) == "" {
		f.add(field, "names no %s: give its name or ID (source=NAME)", kind)
		return refObject{}, false
	}
	obj, err := lookup(ref)
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		shown := ref
		if name != "" {
			shown = name // swarmkit names the missing object by its name
		}
		*missing = append(*missing, shown)
		if id != "" {
			f.add(field, "%s %s (%s) does not exist any more: it was removed; give another %s", kind, shown, id, kind)
		} else {
			f.add(field, "%s %q does not exist: create it first (shoal %s create %s FILE)", kind, ref, kind, ref)
		}
		return refObject{}, false
	case err != nil:
		f.add(field, "%v", err)
		return refObject{}, false
	case id != "" && name != "" && name != obj.name:
		f.add(field, "%s_id %s is %s %q, not %q: give one of them, or both of the same %s", kind, id, kind, obj.name, name, kind)
		return refObject{}, false
	}
	return obj, true
}

// checkTarget cleans a reference's file name and returns the path it
// has in the container (filetarget's rules), saying what is wrong in the
// control API's words.
func checkTarget(f *fieldErrors, field string, t *shoalv1.FileTarget, config bool) (string, bool) {
	name := t.GetName()
	clean, full, err := filetarget.Path(name, config)
	switch {
	case errors.Is(err, filetarget.ErrBlank):
		f.add(field, "target %q is blank: give a file name, or leave target out for the default", name)
	case errors.Is(err, filetarget.ErrNUL):
		f.add(field, "target %q contains a NUL byte", name)
	case errors.Is(err, filetarget.ErrParent):
		f.add(field, "target %q must not contain '..': give a path inside the container without going up", name)
	case errors.Is(err, filetarget.ErrDirectory):
		f.add(field, "target %q is a directory, not a file name: give a file name (e.g. target=db_password)", name)
	}
	if err != nil {
		return "", false
	}
	t.Name = clean
	return full, true
}

// checkOwner fills and checks a file's owner and mode: uid and gid are
// numeric ("0" unless given), the mode is permission bits (0444 unless
// given).
func checkOwner(f *fieldErrors, field string, t *shoalv1.FileTarget) {
	for _, id := range []struct {
		what string
		v    *string
	}{{"uid", &t.Uid}, {"gid", &t.Gid}} {
		if *id.v == "" {
			*id.v = "0"
		}
		if _, err := filetarget.Owner(*id.v); err != nil {
			f.add(field, "%s %q must be a number (a numeric ID such as 1000; names are not looked up)", id.what, *id.v)
		}
	}
	mode, err := filetarget.Mode(t.Mode)
	if err != nil {
		f.add(field, "mode %#o has bits other than the permission bits 0777 (e.g. mode=0440)", t.Mode)
		return
	}
	t.Mode = mode
}

// claim records that the reference at field puts a file at p, refusing
// a path already taken, in swarmkit's words.
func claim(f *fieldErrors, field string, targets map[string]string, p, who string) {
	if prev, ok := targets[p]; ok {
		f.add(field, "%s and %s have a conflicting target: '%s'", prev, who, p)
		return
	}
	targets[p] = who
}

// hasReferences reports whether spec uses any secret or config.
func hasReferences(spec *shoalv1.ServiceSpec) bool {
	c := spec.GetTask().GetContainer()
	return len(c.GetSecrets()) > 0 || len(c.GetConfigs()) > 0
}

// resolveServiceReferences resolves spec's references against the store.
func (s *Server) resolveServiceReferences(spec *shoalv1.ServiceSpec) error {
	if !hasReferences(spec) {
		return nil
	}
	var err error
	s.Store.View(func(r store.ReadTx) {
		err = resolveReferences(spec.GetTask().GetContainer(), secretKind.lookup(r), configKind.lookup(r))
	})
	return err
}
