// Package filetarget holds the rules of where a secret's or config's file
// appears in a container, as whom and with what mode: docker's defaults
// and the checks on what a service gives. The control API applies them
// when a service is created or updated; the worker applies them again to
// each task before it mounts anything. It imports nothing of the product.
package filetarget

import (
	"errors"
	"path"
	"strconv"
	"strings"
)

// SecretsDir is where a secret with a relative target appears.
const SecretsDir = "/run/secrets"

// DefaultMode is docker's mode of a secret or config file.
const DefaultMode = 0o444

// Why a target, owner or mode is refused; callers say it in their words.
var (
	ErrBlank      = errors.New("blank target")
	ErrNUL        = errors.New("target contains a NUL byte")
	ErrParent     = errors.New("target has a '..' element")
	ErrDirectory  = errors.New("target is a directory")
	ErrNotNumeric = errors.New("not a numeric ID")
	ErrModeBits   = errors.New("mode has bits other than permissions")
)

// Path checks a file target name (a secret's relative to SecretsDir
// unless absolute; a config's made absolute, as docker mounts it under
// /) and returns its stored form (cleaned) and its absolute path in the
// container.
func Path(name string, config bool) (clean, full string, err error) {
	switch {
	case strings.TrimSpace(name) == "":
		return "", "", ErrBlank
	case strings.ContainsRune(name, 0):
		return "", "", ErrNUL
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", "", ErrParent
		}
	}
	clean = path.Clean(name)
	if config && !path.IsAbs(clean) {
		clean = "/" + clean
	}
	full = clean
	if !path.IsAbs(full) {
		full = path.Join(SecretsDir, clean)
	}
	if clean == "." || full == "/" || full == SecretsDir {
		return "", "", ErrDirectory
	}
	return clean, full, nil
}

// Owner parses a numeric uid or gid; "" is 0.
func Owner(v string) (uint32, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, ErrNotNumeric
	}
	return uint32(n), nil
}

// Mode is m, or DefaultMode for 0, refused beyond the permission bits.
func Mode(m uint32) (uint32, error) {
	if m == 0 {
		m = DefaultMode
	}
	if m&^0o777 != 0 {
		return 0, ErrModeBits
	}
	return m, nil
}
