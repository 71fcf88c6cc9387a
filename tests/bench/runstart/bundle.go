package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/shoal-run/shoal/tests/testimage"
)

// makeBundle writes img as an OCI layout under dir, unpacks it with umoci
// into an OCI runtime bundle and rewrites the bundle's config.json to run
// /bin/true without a terminal, in the cgroup cgroupsPath. It returns the
// bundle directory.
func makeBundle(img testimage.Built, dir, cgroupsPath string) (string, error) {
	layout := filepath.Join(dir, "oci")
	bundle := filepath.Join(dir, "bundle")
	if err := img.WriteOCILayout(layout); err != nil {
		return "", err
	}
	cmd := exec.Command("umoci", "unpack", "--image", layout+":"+img.Tag, bundle)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("umoci unpack: %v: %s", err, out)
	}
	// The layout was only needed to unpack.
	_ = os.RemoveAll(layout)
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	// Edit the generic JSON so every field umoci wrote stays as it was.
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	proc, _ := spec["process"].(map[string]any)
	linux, _ := spec["linux"].(map[string]any)
	if proc == nil || linux == nil {
		return "", fmt.Errorf("%s has no process or linux section", path)
	}
	proc["args"] = []string{"/bin/true"}
	proc["terminal"] = false
	linux["cgroupsPath"] = cgroupsPath
	out, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return "", err
	}
	return bundle, nil
}

// bundleNamespaces lists the namespaces the bundle's config asks for, for
// the report.
func bundleNamespaces(bundle string) []string {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil
	}
	var spec struct {
		Linux struct {
			Namespaces []struct {
				Type string `json:"type"`
			} `json:"namespaces"`
			Seccomp json.RawMessage `json:"seccomp"`
		} `json:"linux"`
	}
	if json.Unmarshal(data, &spec) != nil {
		return nil
	}
	var out []string
	for _, ns := range spec.Linux.Namespaces {
		out = append(out, ns.Type)
	}
	if len(spec.Linux.Seccomp) > 0 && string(spec.Linux.Seccomp) != "null" {
		out = append(out, "(seccomp)")
	}
	return out
}
