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

func parseSecretFlags(flag string, values []string) ([]*shoalv1.SecretReference, error) {
	var out []*shoalv1.SecretReference
	for _, v := range values {
		r, err := parseFileRef(flag, "secret", v)
		if err != nil {
			return nil, err
		}
		out = append(out, &shoalv1.SecretReference{SecretName: r.source, File: r.file})
	}
	return out, nil
}

func parseConfigFlags(flag string, values []string) ([]*shoalv1.ConfigReference, error) {
	var out []*shoalv1.ConfigReference
	for _, v := range values {
		r, err := parseFileRef(flag, "config", v)
		if err != nil {
			return nil, err
		}
		out = append(out, &shoalv1.ConfigReference{ConfigName: r.source, File: r.file})
	}
	return out, nil
}

// objectRef is a secret or config as the manager names it.
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

// updateSecrets removes the references --secret-rm names, then appends
// those of --secret-add: docker's order, so that
// `--secret-rm old --secret-add source=new,target=old` swaps a value in
// at the same path.
func updateSecrets(refs []*shoalv1.SecretReference, add, rm []string, resolve func(ref string) (objectRef, error)) ([]*shoalv1.SecretReference, error) {
	added, err := parseSecretFlags("--secret-add", add)
	if err != nil {
		return nil, err
	}
	drop, err := dropRefs("--secret-rm", rm, func(ref string) bool {
		for _, r := range refs {
			if r.GetSecretName() == ref || r.GetSecretId() == ref {
				return true
			}
		}
		return false
	}, resolve)
	if err != nil {
		return nil, err
	}
	var out []*shoalv1.SecretReference
	for _, r := range refs {
		if !drop(r.GetSecretId(), r.GetSecretName()) {
			out = append(out, r)
		}
	}
	return append(out, added...), nil
}

// updateConfigs is updateSecrets for --config-add and --config-rm.
func updateConfigs(refs []*shoalv1.ConfigReference, add, rm []string, resolve func(ref string) (objectRef, error)) ([]*shoalv1.ConfigReference, error) {
	added, err := parseConfigFlags("--config-add", add)
	if err != nil {
		return nil, err
	}
	drop, err := dropRefs("--config-rm", rm, func(ref string) bool {
		for _, r := range refs {
			if r.GetConfigName() == ref || r.GetConfigId() == ref {
				return true
			}
		}
		return false
	}, resolve)
	if err != nil {
		return nil, err
	}
	var out []*shoalv1.ConfigReference
	for _, r := range refs {
		if !drop(r.GetConfigId(), r.GetConfigName()) {
			out = append(out, r)
		}
	}
	return append(out, added...), nil
}
