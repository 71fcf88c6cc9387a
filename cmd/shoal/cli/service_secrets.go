package cli

import (
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"strings"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The --secret and --config flags of service create, and --secret-add,
// --secret-rm, --config-add and --config-rm of service update, read as
// docker reads them. What a flag leaves out (target, uid, gid, mode) the
// manager fills with docker's defaults once it has resolved the name:
// the target is the secret's name under /run/secrets (a config's is
// /NAME), owned by 0:0, mode 0444.

// fileRef is one --secret or --config value.
type fileRef struct {
	source string // the object's name or ID
	file   *shoalv1.FileTarget
}

// parseFileRef reads NAME or source=NAME[,target=PATH][,uid=N][,gid=N][,mode=0440]
// (CSV, as docker's; src is source, keys in any case).
func parseFileRef(flag, kind, value string) (fileRef, error) {
	bad := func(format string, args ...any) (fileRef, error) {
		return fileRef{}, fmt.Errorf("%s %q: %s (e.g. %s db_password or %s source=db_password,target=/etc/app/pw,uid=1000,mode=0400)",
			flag, value, fmt.Sprintf(format, args...), flag, flag)
	}
	if strings.TrimSpace(value) == "" {
		return bad("source is required")
	}
	r := csv.NewReader(strings.NewReader(value))
	fields, err := r.Read()
	if err != nil {
		return bad("%v", err)
	}
	// The short form: --secret NAME.
	if len(fields) == 1 && !strings.Contains(fields[0], "=") {
		if strings.TrimSpace(fields[0]) == "" {
			return bad("source is required")
		}
		return fileRef{source: fields[0]}, nil
	}
	var out fileRef
	var f shoalv1.FileTarget
	given := false
	for _, field := range fields {
		key, val, ok := strings.Cut(field, "=")
		if !ok || key == "" {
			return bad("invalid field '%s' must be a key=value pair", field)
		}
		switch strings.ToLower(key) {
		case "source", "src":
			out.source = val
		case "target":
			if val == "" {
				return bad("target is empty: give a path, or leave target out for the default")
			}
			f.Name, given = val, true
		case "uid":
			f.Uid, given = val, true
		case "gid":
			f.Gid, given = val, true
		case "mode":
			m, err := strconv.ParseUint(val, 0, 32)
			if err != nil {
				return bad("invalid mode specified: %v", errors.Unwrap(err))
			}
			if m == 0 {
				return bad("mode 0 would leave the file readable by root only; give the mode you mean (0400 for the owner; leave mode out for 0444)")
			}
			f.Mode, given = uint32(m), true
		default:
			return bad("invalid field in %s request: %s", kind, key)
		}
	}
	if out.source == "" {
		return bad("source is required")
	}
	if given {
		out.file = &f
	}
	return out, nil
}

// refKind is what the flags need of secret or config references.
type refKind[R any] struct {
	kind  string                                       // "secret" or "config"
	flag  string                                       // "--secret" or "--config"
	make  func(source string, f *shoalv1.FileTarget) R // a reference by name
	names func(R) (id, name string)                    // what a reference names
}

var (
	secretRefs = refKind[*shoalv1.SecretReference]{
		kind: "secret", flag: "--secret",
		make: func(source string, f *shoalv1.FileTarget) *shoalv1.SecretReference {
			return &shoalv1.SecretReference{SecretName: source, File: f}
		},
		names: func(r *shoalv1.SecretReference) (string, string) { return r.GetSecretId(), r.GetSecretName() },
	}
	configRefs = refKind[*shoalv1.ConfigReference]{
		kind: "config", flag: "--config",
		make: func(source string, f *shoalv1.FileTarget) *shoalv1.ConfigReference {
			return &shoalv1.ConfigReference{ConfigName: source, File: f}
		},
		names: func(r *shoalv1.ConfigReference) (string, string) { return r.GetConfigId(), r.GetConfigName() },
	}
)

// parse reads the values of flag, each a reference.
func (k refKind[R]) parse(flag string, values []string) ([]R, error) {
	var out []R
	for _, v := range values {
		r, err := parseFileRef(flag, k.kind, v)
		if err != nil {
			return nil, err
		}
		out = append(out, k.make(r.source, r.file))
	}
	return out, nil
}

// objectRef is a secret, config or network as the manager names it.
type objectRef struct{ id, name string }

// dropRefs is what --secret-rm and --config-rm do, as docker's: every
// reference to an object named (by name or ID) goes; a name the service
// does not use is resolved, and removes nothing when it exists (docker's
// silence) but is an error when nothing has that name.
func dropRefs(flag string, rm []string, uses func(ref string) bool, resolve func(ref string) (objectRef, error)) (drop func(id, name string) bool, err error) {
	names := map[string]bool{}
	for _, ref := range rm {
		names[ref] = true
		if uses(ref) {
			continue
		}
		o, err := resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", flag, ref, err)
		}
		names[o.id], names[o.name] = true, true
	}
	return func(id, name string) bool { return names[id] || names[name] }, nil
}

// update removes the references --KIND-rm names, then appends those of
// --KIND-add: docker's order, so that
// `--secret-rm old --secret-add source=new,target=old` swaps a value in
// at the same path.
func (k refKind[R]) update(refs []R, add, rm []string, resolve func(ref string) (objectRef, error)) ([]R, error) {
	added, err := k.parse(k.flag+"-add", add)
	if err != nil {
		return nil, err
	}
	drop, err := dropRefs(k.flag+"-rm", rm, func(ref string) bool {
		for _, r := range refs {
			if id, name := k.names(r); name == ref || id == ref {
				return true
			}
		}
		return false
	}, resolve)
	if err != nil {
		return nil, err
	}
	var out []R
	for _, r := range refs {
		if !drop(k.names(r)) {
			out = append(out, r)
		}
	}
	return append(out, added...), nil
}

// updateSecrets is update for --secret-add and --secret-rm.
func updateSecrets(refs []*shoalv1.SecretReference, add, rm []string, resolve func(ref string) (objectRef, error)) ([]*shoalv1.SecretReference, error) {
	return secretRefs.update(refs, add, rm, resolve)
}

// updateConfigs is update for --config-add and --config-rm.
func updateConfigs(refs []*shoalv1.ConfigReference, add, rm []string, resolve func(ref string) (objectRef, error)) ([]*shoalv1.ConfigReference, error) {
	return configRefs.update(refs, add, rm, resolve)
}
