// Package shimbin carries the small shoal-shim program inside the shoal
// binary when it is built with `make build` (build tag shimembed), so that
// each container's supervisor is a ~2 MB process instead of a copy of the
// whole daemon. Without the tag, Binary is nil and the daemon runs itself
// as the shim.
package shimbin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Binary is the embedded shoal-shim, or nil.
var Binary []byte

// Install writes the embedded shim into dir (once per content) and
// returns its path, or "" when no shim is embedded.
func Install(dir string) (string, error) {
	if len(Binary) == 0 {
		return "", nil
	}
	sum := sha256.Sum256(Binary)
	path := filepath.Join(dir, "shoal-shim-"+hex.EncodeToString(sum[:6]))
	if st, err := os.Stat(path); err == nil && st.Size() == int64(len(Binary)) {
		return path, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".shoal-shim-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(Binary); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("install shim: %w", err)
	}
	return path, nil
}
