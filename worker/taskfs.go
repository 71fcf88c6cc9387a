package worker

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
)

// A task's secrets and configs live on a tmpfs of its own on the host,
// <exec root>/secrets/<task ID> (mode 0700, nosuid, nodev, noexec, a
// size cap), each file bind-mounted read-only into the container at its
// target: inside the container too the file is on tmpfs, and nothing of
// it reaches a disk. The tmpfs outlives its containers (an in-place
// restart, even after a daemon restart with no manager answering, finds
// the files there) and goes when the task ends.

// filesSlack is room on a task's tmpfs beyond its files' pages.
const filesSlack = 64 << 10

// filesRoot is where the tasks' tmpfs are mounted.
func (e *RuntimeExecutor) filesRoot() string { return filepath.Join(e.ExecRoot, "secrets") }

func (e *RuntimeExecutor) filesDir(taskID string) (string, error) {
	if taskID == "" || taskID != filepath.Base(taskID) || taskID == "." || taskID == ".." {
		return "", fmt.Errorf("task ID %q cannot name a directory: %w", taskID, errdefs.ErrInvalid)
	}
	return filepath.Join(e.filesRoot(), taskID), nil
}

// PrepareFiles implements Executor: the task's tmpfs holds its files.
func (e *RuntimeExecutor) PrepareFiles(t *shoalv1.Task) error {
	_, err := e.prepareFiles(t)
	return err
}

// prepareFiles fills the task's tmpfs (mounting it first if it is not)
// and returns the bind mounts of its files into the container. A file
// neither held in memory nor left on the tmpfs is a *MissingFileError;
// a bad reference fails before anything is mounted.
func (e *RuntimeExecutor) prepareFiles(t *shoalv1.Task) ([]container.Mount, error) {
	plan, err := PlanFiles(t)
	if err != nil || len(plan) == 0 {
		return nil, err
	}
	if e.ExecRoot == "" || e.Files == nil {
		return nil, fmt.Errorf("the task uses secrets or configs, and this node runs without an exec root for them: %w", errdefs.ErrFailedPrecond)
	}
	dir, err := e.filesDir(t.GetId())
	if err != nil {
		return nil, err
	}
	mounted := isMountPoint(dir)
	data := make([][]byte, len(plan))
	var size int64 = filesSlack
	for i, f := range plan {
		v, ok := e.Files.Config(f.ID)
		if f.Kind == KindSecret {
			v, ok = e.Files.Secret(f.ID)
		}
		if !ok {
			if _, err := os.Lstat(filepath.Join(dir, f.HostName)); err != nil || !mounted {
				return nil, &MissingFileError{Kind: f.Kind, Name: f.Name}
			}
			continue // left there by an earlier run: secrets and configs never change
		}
		data[i] = v
		size += (int64(len(v))/4096 + 1) * 4096
	}
	if !mounted {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=0700,size=%d", size)); err != nil {
			return nil, fmt.Errorf("mount a tmpfs for the task's secrets and configs: %w", err)
		}
	}
	mounts := make([]container.Mount, 0, len(plan))
	for i, f := range plan {
		p := filepath.Join(dir, f.HostName)
		if data[i] != nil {
			if err := writeTaskFile(p, data[i], f); err != nil {
				return nil, fmt.Errorf("%s %s: %w", f.Kind, f.Name, err)
			}
		}
		mounts = append(mounts, container.Mount{Type: container.MountBind, Source: p, Target: f.Target, ReadOnly: true})
	}
	return mounts, nil
}

// writeTaskFile puts data at p with f's owner and mode, whole or not at
// all (a daemon killed mid-write leaves no half file to reuse).
func writeTaskFile(p string, data []byte, f TaskFile) error {
	if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() && st.Size() == int64(len(data)) {
		return ensureOwner(p, f) // already there
	}
	tmp := p + ".tmp"
	_ = os.Remove(tmp)
	fd, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = fd.Write(data)
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ensureOwner(tmp, f)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

func ensureOwner(p string, f TaskFile) error {
	if err := os.Lchown(p, f.UID, f.GID); err != nil {
		return err
	}
	return os.Chmod(p, os.FileMode(f.Mode))
}

// ReleaseFiles implements Executor: the task ended, its tmpfs goes.
func (e *RuntimeExecutor) ReleaseFiles(taskID string) {
	if e.ExecRoot == "" {
		return
	}
	dir, err := e.filesDir(taskID)
	if err != nil {
		return
	}
	releaseDir(dir)
}

func releaseDir(dir string) {
	for isMountPoint(dir) {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			break
		}
	}
	_ = os.RemoveAll(dir)
}

// PruneFiles removes the tmpfs of every task not in keep: at daemon
// start, those whose task has no running container here any more.
func (e *RuntimeExecutor) PruneFiles(keep map[string]bool) (removed []string) {
	if e.ExecRoot == "" {
		return nil
	}
	ents, err := os.ReadDir(e.filesRoot())
	if err != nil {
		return nil
	}
	for _, ent := range ents {
		if !keep[ent.Name()] {
			releaseDir(filepath.Join(e.filesRoot(), ent.Name()))
			removed = append(removed, ent.Name())
		}
	}
	return removed
}

// isMountPoint reports whether dir is a directory with a file system
// mounted on it (its device differs from its parent's).
func isMountPoint(dir string) bool {
	var st, parent unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false
	}
	return st.Dev != parent.Dev
}
