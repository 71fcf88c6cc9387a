package testimage

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// whoamiSources is the whoami program, embedded so Build works from any
// binary (the demo, benchmarks built with -trimpath) wherever it runs.
//
//go:embed whoami/*.go
var whoamiSources embed.FS

// buildFlags are the go build flags of the workload: a small static binary.
var buildFlags = []string{"build", "-trimpath", "-ldflags=-s -w"}

// CacheDir is where built binaries are kept, one directory per hash of
// sources, toolchain version and flags. Removing it is always safe.
func CacheDir() string {
	return filepath.Join(os.TempDir(), "shoal-testimage-cache")
}

var buildMu sync.Mutex // one go build at a time in this process

// BuildWhoami compiles the workload with CGO_ENABLED=0 for linux on this
// machine's architecture and returns the path of the static binary in
// CacheDir. dir is the workload's main package; "" means the embedded
// whoami. The key covers the .go files of dir (not its imports: keep the
// workload on the standard library), go.mod and go.sum, so a second call
// with the same sources only checks that the file exists.
func BuildWhoami(dir string) (string, error) {
	files, err := sources(dir)
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("testimage: the go toolchain is needed to build the whoami workload: %w", err)
	}
	goVersion, err := toolchainVersion(goBin, dir)
	if err != nil {
		return "", err
	}
	key := cacheKey(files, goVersion)
	out := filepath.Join(CacheDir(), key, "whoami")

	buildMu.Lock()
	defer buildMu.Unlock()
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("testimage: %w", err)
	}

	// Another process may build the same key: each builds into its own
	// temporary name and renames, so readers only ever see whole files.
	tmp, err := os.CreateTemp(filepath.Dir(out), "whoami-*.tmp")
	if err != nil {
		return "", fmt.Errorf("testimage: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	cmd := exec.Command(goBin, append(buildFlags, "-o", tmp.Name(), ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if os.Getenv("GOCACHE") == "" && os.Getenv("HOME") == "" && os.Getenv("XDG_CACHE_HOME") == "" {
		cmd.Env = append(cmd.Env, "GOCACHE="+filepath.Join(CacheDir(), "gocache"))
	}
	if dir == "" {
		src, err := os.MkdirTemp(CacheDir(), "src-")
		if err != nil {
			return "", fmt.Errorf("testimage: %w", err)
		}
		defer os.RemoveAll(src)
		if err := writeSources(src, files); err != nil {
			return "", err
		}
		cmd.Dir = src
		// A module of its own: no workspace, no caller's -modfile, no
		// toolchain download.
		cmd.Env = append(cmd.Env, "GOFLAGS=-buildvcs=false", "GOWORK=off", "GO111MODULE=on", "GOTOOLCHAIN=local")
	} else {
		cmd.Dir = dir
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testimage: building whoami in %s: %v\n%s", cmd.Dir, err, msg)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", fmt.Errorf("testimage: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("testimage: %w", err)
	}
	return out, nil
}

// srcFile is one file of the workload's sources.
type srcFile struct {
	name string
	data []byte
}

// embeddedGoMod makes the embedded sources a module of their own.
const embeddedGoMod = "module whoami\n\ngo 1.21\n"

// sources reads the workload's files, sorted by name.
func sources(dir string) ([]srcFile, error) {
	var files []srcFile
	if dir == "" {
		entries, err := fs.ReadDir(whoamiSources, "whoami")
		if err != nil {
			return nil, fmt.Errorf("testimage: embedded whoami: %w", err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			b, err := whoamiSources.ReadFile("whoami/" + e.Name())
			if err != nil {
				return nil, fmt.Errorf("testimage: embedded whoami: %w", err)
			}
			files = append(files, srcFile{e.Name(), b})
		}
		files = append(files, srcFile{"go.mod", []byte(embeddedGoMod)})
	} else {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("testimage: workload sources: %w", err)
		}
		for _, e := range entries {
			n := e.Name()
			if !e.Type().IsRegular() || !(strings.HasSuffix(n, ".go") || n == "go.mod" || n == "go.sum") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				return nil, fmt.Errorf("testimage: workload sources: %w", err)
			}
			files = append(files, srcFile{n, b})
		}
	}
	hasGo := false
	for _, f := range files {
		hasGo = hasGo || strings.HasSuffix(f.name, ".go")
	}
	if !hasGo {
		return nil, fmt.Errorf("testimage: %s holds no Go sources; pass \"\" to build the embedded whoami", dir)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, nil
}

func writeSources(dir string, files []srcFile) error {
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("testimage: %w", err)
		}
	}
	return nil
}

// cacheKey hashes everything that decides the binary's bytes.
func cacheKey(files []srcFile, goVersion string) string {
	h := sha256.New()
	fmt.Fprintf(h, "testimage-whoami v1\n%s\nlinux/%s\nCGO_ENABLED=0\n%q\n", goVersion, runtime.GOARCH, buildFlags)
	for _, f := range files {
		fmt.Fprintf(h, "%s %d\n", f.name, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

var (
	goVersionMu sync.Mutex
	goVersions  = map[string]string{}
)

// toolchainVersion is `go env GOVERSION` as the build in dir will see it,
// asked once per process.
func toolchainVersion(goBin, dir string) (string, error) {
	goVersionMu.Lock()
	defer goVersionMu.Unlock()
	if v, ok := goVersions[goBin+"\x00"+dir]; ok {
		return v, nil
	}
	cmd := exec.Command(goBin, "env", "GOVERSION")
	cmd.Dir = dir
	if dir == "" {
		cmd.Dir = os.TempDir()
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("testimage: go env GOVERSION: %v: %s", err, stderr.String())
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", errors.New("testimage: go env GOVERSION printed nothing")
	}
	goVersions[goBin+"\x00"+dir] = v
	return v, nil
}
