package worker

import (
	"errors"
	"fmt"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/filetarget"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// FileKind is a secret or a config.
type FileKind string

// File kinds.
const (
	KindSecret FileKind = "secret"
	KindConfig FileKind = "config"
)

// TaskFile is one secret or config file of a task's container, its
// defaults applied and checked.
type TaskFile struct {
	Kind FileKind
	ID   string // the secret's or config's ID
	Name string // its name, for messages
	// Target is the absolute path in the container.
	Target   string
	UID, GID int
	Mode     uint32
	// HostName is the file's name on the task's tmpfs: the same for the
	// same reference of the same task, so a restart finds it again.
	HostName string
}

// MissingFileError says a task's secret or config is neither held in
// memory nor left on its tmpfs: the task waits until a manager sends it.
type MissingFileError struct {
	Kind FileKind
	Name string
}

func (e *MissingFileError) Error() string {
	return fmt.Sprintf("waiting for %s %s from a manager", e.Kind, e.Name)
}

// PlanFiles is the pure part of preparing a task's secrets and configs:
// each reference with the defaults applied (a secret's file name
// relative to /run/secrets unless absolute, default its name; a config's
// target absolute, default /<name>; uid and gid "0"; mode 0444) and
// checked: an ID, a target that stays where it belongs (no ".."), numeric
// uid and gid, permission bits only, no two files on one target. An
// error names the reference and what to fix.
func PlanFiles(t *shoalv1.Task) ([]TaskFile, error) {
	c := t.GetSpec().GetContainer()
	var out []TaskFile
	targets := map[string]string{}
	add := func(kind FileKind, i int, id, name string, f *shoalv1.FileTarget) error {
		what := fmt.Sprintf("%s %q", kind, name)
		if name == "" {
			what = fmt.Sprintf("%s %s", kind, id)
		}
		if id == "" {
			return fmt.Errorf("%s: the reference has no %s ID; update the service with --%s-rm and --%s-add: %w", what, kind, kind, kind, errdefs.ErrInvalid)
		}
		target, err := fileTarget(kind, name, f.GetName())
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		uid, err := fileOwner("uid", f.GetUid())
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		gid, err := fileOwner("gid", f.GetGid())
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		mode, err := filetarget.Mode(f.GetMode())
		if err != nil {
			return fmt.Errorf("%s: mode %#o has bits other than permissions; give one from 0000 to 0777: %w", what, f.GetMode(), errdefs.ErrInvalid)
		}
		if other, ok := targets[target]; ok {
			return fmt.Errorf("%s: target %s is also %s's; give each a target of its own: %w", what, target, other, errdefs.ErrInvalid)
		}
		targets[target] = what
		out = append(out, TaskFile{Kind: kind, ID: id, Name: name, Target: target, UID: uid, GID: gid, Mode: mode,
			HostName: fmt.Sprintf("%s-%d-%s", kind, i, id)})
		return nil
	}
	for i, r := range c.GetSecrets() {
		if err := add(KindSecret, i, r.GetSecretId(), r.GetSecretName(), r.GetFile()); err != nil {
			return nil, err
		}
	}
	for i, r := range c.GetConfigs() {
		if err := add(KindConfig, i, r.GetConfigId(), r.GetConfigName(), r.GetFile()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fileTarget is the absolute path of a secret's or config's file in the
// container (filetarget's rules; the default is the object's name).
func fileTarget(kind FileKind, name, target string) (string, error) {
	if target == "" {
		target = name
	}
	_, full, err := filetarget.Path(target, kind == KindConfig)
	switch {
	case errors.Is(err, filetarget.ErrBlank):
		return "", fmt.Errorf("no target and no name: %w", errdefs.ErrInvalid)
	case errors.Is(err, filetarget.ErrParent):
		return "", fmt.Errorf("target %q has a \"..\" element: it must stay under %s; give a plain file name: %w", target, dirOf(kind), errdefs.ErrInvalid)
	case errors.Is(err, filetarget.ErrDirectory):
		return "", fmt.Errorf("target %q is a directory, not a file: %w", target, errdefs.ErrInvalid)
	case err != nil:
		return "", fmt.Errorf("target %q: %v: %w", target, err, errdefs.ErrInvalid)
	}
	return full, nil
}

func dirOf(kind FileKind) string {
	if kind == KindSecret {
		return filetarget.SecretsDir
	}
	return "/"
}

// fileOwner parses a numeric uid or gid ("" is 0).
func fileOwner(what, v string) (int, error) {
	n, err := filetarget.Owner(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not numeric; give a number (names are not resolved): %w", what, v, errdefs.ErrInvalid)
	}
	return int(n), nil
}
