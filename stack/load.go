// Package stack reads compose files and turns them into the specs of a
// stack, as `docker stack deploy` does: the compose spec's own library
// (compose-go) loads, merges, interpolates and validates the files;
// Convert maps the project onto Shoal's service, network, secret and
// config specs, named and labelled for the stack. It talks to no server:
// the CLI deploys what it returns.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
)

// Options say what to load.
type Options struct {
	// Files are paths; "-" reads Stdin (at most once).
	Files []string
	Stdin io.Reader
	// Env is the process environment. A .env file in WorkDir adds to
	// it; the process environment wins, as docker's.
	Env map[string]string
	// Namespace is the stack's name: the project's, so that resources
	// with no name: are named NAMESPACE_key, docker's way ("" for stack
	// config, which deploys nothing).
	Namespace string
	// WorkDir is what relative paths (env_file, file: of secrets and
	// configs, bind mounts, .env) are relative to; "" is the directory of
	// the first file (the current directory for "-").
	WorkDir string
}

// Load reads, merges (in order), interpolates and validates the files.
func Load(ctx context.Context, o Options) (*types.Project, error) {
	if len(o.Files) == 0 {
		return nil, errors.New("please specify a compose file (with --compose-file)")
	}
	dir := o.WorkDir
	var files []types.ConfigFile
	stdin := false
	for _, f := range o.Files {
		if f == "-" {
			if stdin {
				return nil, errors.New(`-c -: standard input can be read only once`)
			}
			stdin = true
			if o.Stdin == nil {
				return nil, errors.New(`-c -: no standard input`)
			}
			data, err := io.ReadAll(o.Stdin)
			if err != nil {
				return nil, fmt.Errorf("read the compose file from standard input: %w", err)
			}
			files = append(files, types.ConfigFile{Filename: "-", Content: data})
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("compose file %s: %w", f, errors.Unwrap(err))
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		files = append(files, types.ConfigFile{Filename: abs, Content: data})
		if dir == "" {
			dir = filepath.Dir(abs)
		}
	}
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		dir = wd
	}
	env, err := environment(dir, o.Env)
	if err != nil {
		return nil, err
	}
	// compose-go warns through logrus (e.g. that version: is obsolete);
	// docker's stack deploy says nothing of it, and neither do we.
	logrus.SetLevel(logrus.ErrorLevel)
	p, err := loader.LoadWithContext(ctx, types.ConfigDetails{WorkingDir: dir, ConfigFiles: files, Environment: env},
		func(lo *loader.Options) {
			// The stack's name is the deploy's argument, not the
			// directory's.
			ns := o.Namespace
			if ns == "" {
				ns = "stack"
			}
			lo.SetProjectName(ns, true)
		})
	if err != nil {
		return nil, fmt.Errorf("compose file: %w", err)
	}
	return p, nil
}

// environment is the process environment over the .env file in dir.
func environment(dir string, procEnv map[string]string) (types.Mapping, error) {
	env := types.Mapping{}
	path := filepath.Join(dir, ".env")
	if _, err := os.Stat(path); err == nil {
		dot, err := dotenv.GetEnvFromFile(procEnv, []string{path})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for k, v := range dot {
			env[k] = v
		}
	}
	for k, v := range procEnv {
		env[k] = v
	}
	return env, nil
}

// Config renders the loaded project as YAML: what `stack config` prints,
// the merged and interpolated file.
func Config(p *types.Project) ([]byte, error) {
	q := *p
	q.Name = "" // the deploy's argument, not the file's
	return q.MarshalYAML()
}
