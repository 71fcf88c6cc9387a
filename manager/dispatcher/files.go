package dispatcher

import (
	"slices"

	"github.com/shoal-run/shoal/manager/orchestrator"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// needsFiles reports whether task t of node still needs its secrets and
// configs on that node: it is assigned there and has not ended. A task
// being stopped (desired shutdown or remove, still running) needs them
// until its container is gone; one that ended (complete, failed,
// rejected, shut down) is never run again by the worker, so they leave
// with it even while it stays in the node's set as history.
func needsFiles(t *shoalv1.Task, node string) bool {
	return t.GetNodeId() == node && t.GetStatus().GetState() >= shoalv1.TaskState_TASK_STATE_ASSIGNED &&
		!orchestrator.Terminal(t.GetStatus().GetState())
}

// fileIDs are the IDs of the secrets and of the configs the tasks
// reference.
func fileIDs(tasks map[string]*shoalv1.Task) (secrets, configs map[string]bool) {
	secrets, configs = map[string]bool{}, map[string]bool{}
	for _, t := range tasks {
		for _, r := range t.GetSpec().GetContainer().GetSecrets() {
			if r.GetSecretId() != "" {
				secrets[r.GetSecretId()] = true
			}
		}
		for _, r := range t.GetSpec().GetContainer().GetConfigs() {
			if r.GetConfigId() != "" {
				configs[r.GetConfigId()] = true
			}
		}
	}
	return secrets, configs
}

// fileDiff is what a node must be told of one kind of file (secrets or
// configs): add, the IDs it needs (want) that exist (present) and it was
// not sent yet; remove, those it was sent that it no longer needs or
// that no longer exist. Both sorted.
func fileDiff(sent, want, present map[string]bool) (add, remove []string) {
	for id := range want {
		if present[id] && !sent[id] {
			add = append(add, id)
		}
	}
	for id := range sent {
		if !want[id] || !present[id] {
			remove = append(remove, id)
		}
	}
	slices.Sort(add)
	slices.Sort(remove)
	return add, remove
}

// nodeFiles follows what one node's assignment stream has told it of
// secrets and configs, and what its tasks need.
type nodeFiles struct {
	node    string
	live    map[string]*shoalv1.Task // the node's tasks that need their files
	secrets map[string]bool          // sent and not removed since
	configs map[string]bool
}

func newNodeFiles(node string) *nodeFiles {
	return &nodeFiles{node: node, live: map[string]*shoalv1.Task{}, secrets: map[string]bool{}, configs: map[string]bool{}}
}

// task takes a task's new version (deleted: it went) and reports
// whether what the node needs may have changed.
func (f *nodeFiles) task(t *shoalv1.Task, deleted bool) bool {
	_, was := f.live[t.GetId()]
	if !deleted && needsFiles(t, f.node) {
		f.live[t.GetId()] = t
		return true
	}
	delete(f.live, t.GetId())
	return was
}

// sync adds to msg the secrets and configs the node now needs and was
// not sent (read from r), and the IDs of those it no longer needs, and
// records them as sent.
func (f *nodeFiles) sync(r store.ReadTx, msg *shoalv1.AssignmentsResponse) {
	wantS, wantC := fileIDs(f.live)
	secrets, removedSecrets := syncKind[*shoalv1.Secret](r, store.TableSecret, f.secrets, wantS)
	configs, removedConfigs := syncKind[*shoalv1.Config](r, store.TableConfig, f.configs, wantC)
	msg.Secrets = append(msg.Secrets, secrets...)
	msg.RemovedSecrets = append(msg.RemovedSecrets, removedSecrets...)
	msg.Configs = append(msg.Configs, configs...)
	msg.RemovedConfigs = append(msg.RemovedConfigs, removedConfigs...)
}

// syncKind does sync's work for one kind of file (table): it returns
// the objects of want that exist and were not sent, and the IDs of the
// sent ones no longer wanted or no longer there, both by ID, and records
// them in sent.
func syncKind[T store.Object](r store.ReadTx, table string, sent, want map[string]bool) (add []T, remove []string) {
	present := map[string]bool{}
	objs := map[string]T{}
	for id := range want {
		if o := store.Get[T](r, table, id); o.GetId() != "" {
			present[id], objs[id] = true, o
		}
	}
	addIDs, remove := fileDiff(sent, want, present)
	for _, id := range addIDs {
		add = append(add, objs[id])
		sent[id] = true
	}
	for _, id := range remove {
		delete(sent, id)
	}
	return add, remove
}
