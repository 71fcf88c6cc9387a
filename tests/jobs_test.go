package tests

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// jobSampler watches, in /proc on every node, the containers of a job
// that really run: the most alive at once, and every task and environment
// seen.
type jobSampler struct {
	mu    sync.Mutex
	peak  int
	tasks map[string][]string // task ID -> its container's environment
	stop  chan struct{}
	done  chan struct{}
}

func sampleJob(c *harness.Cluster, svc string) *jobSampler {
	s := &jobSampler{tasks: map[string][]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			n := 0
			for _, node := range c.Nodes() {
				for _, ct := range harness.Of(svc, node.RunningContainers()) {
					n++
					s.mu.Lock()
					// A process that is exiting reads as an empty
					// environment: keep what it showed while it ran.
					env := ct.Env
					if prev, ok := s.tasks[ct.Task]; ok && strings.Join(env, "") == "" {
						env = prev
					}
					s.tasks[ct.Task] = env
					s.mu.Unlock()
				}
			}
			s.mu.Lock()
			s.peak = max(s.peak, n)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return s
}

// end stops sampling and returns the peak and the tasks seen.
func (s *jobSampler) end() (int, map[string][]string) {
	close(s.stop)
	<-s.done
	return s.peak, s.tasks
}

var completeRow = regexp.MustCompile(`(?m)^\S+\s+(?:\\_ )?batch\.(\d+)\s.*\sComplete\s+Complete .* ago`)

// completedSlots are the slots of batch's tasks that service ps shows
// desired and currently Complete.
func completedSlots(ps string) []string {
	var out []string
	for _, m := range completeRow.FindAllStringSubmatch(ps, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

// Jobs on a real cluster, as docker's: a replicated job of 10 completions,
// 3 at a time, never has more than 3 containers alive at once (sampled in
// /proc on every node throughout) and ends with 10 tasks complete, as
// service ps and service ls (docker's "0/3 (10/10 completed)") show; a
// change of its spec runs it again, with the new spec, and so does
// --force's change (force_update); a job whose task fails is retried per
// its restart policy and given up once its attempts are used, and the
// wait after create says so and fails; a global job runs to completion
// on every node, the wait after create ending with "job complete".
func TestJobs(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]

	s := sampleJob(c, "batch")
	m.MustCLI("service", "create", "-d", "--name", "batch", "--mode", "replicated-job", "--replicas", "10", "--max-concurrent", "3",
		"--env", "RUN=1", img.Ref, "sleep", "2s")
	waitJob := func(run string) {
		harness.Eventually(t, 120*time.Second, func() error {
			ls := m.MustCLI("service", "ls")
			if line := lineWith(ls, "batch"); !regexp.MustCompile(`batch\s+replicated job\s+0/3 \(10/10 completed\)`).MatchString(line) {
				return fmt.Errorf("%s: service ls shows %q; want replicated job 0/3 (10/10 completed)", run, line)
			}
			return nil
		})
	}
	waitJob("run 1")
	peak, seen := s.end()
	if peak > 3 {
		t.Fatalf("%d containers of the job were alive at once; --max-concurrent is 3", peak)
	}
	if peak < 2 {
		t.Fatalf("at most %d container of the job alive at once: the sampling saw no concurrency at all", peak)
	}
	if len(seen) != 10 {
		t.Fatalf("saw %d tasks' containers run; want 10", len(seen))
	}
	ps := m.MustCLI("service", "ps", "batch")
	if got := completedSlots(ps); fmt.Sprint(got) != "[1 10 2 3 4 5 6 7 8 9]" {
		t.Fatalf("service ps shows complete slots %v; want batch.1 to batch.10 each once:\n%s", got, ps)
	}
	// Completed stays completed: nothing runs again, no new task.
	harness.Holds(t, 3*time.Second, func() error {
		if n, _ := c.ServiceContainers("batch"); n != 0 {
			return fmt.Errorf("%d containers of the completed job run", n)
		}
		return nil
	})

	// A spec change runs the job again, with the new spec; the first
	// run's completions stay as history.
	s = sampleJob(c, "batch")
	m.MustCLI("service", "update", "-d", "--env-add", "RUN=2", "batch")
	waitJob("run 2")
	peak, seen = s.end()
	if peak > 3 || len(seen) != 10 {
		t.Fatalf("run 2: peak %d containers, %d tasks seen; want at most 3 and 10", peak, len(seen))
	}
	for task, env := range seen {
		if !slices.Contains(env, "RUN=2") {
			t.Fatalf("run 2's task %s ran with environment %q; want RUN=2", task, env)
		}
	}
	if got := len(completedSlots(m.MustCLI("service", "ps", "batch"))); got != 20 {
		t.Fatalf("service ps shows %d complete tasks; want 20 (10 of each run)", got)
	}

	// --force (force_update raised, the spec otherwise unchanged) runs
	// it again too.
	ctl := m.Control()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cur, err := ctl.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: "batch"})
	if err != nil {
		t.Fatal(err)
	}
	spec := proto.Clone(cur.GetService().GetSpec()).(*shoalv1.ServiceSpec)
	spec.Task.ForceUpdate++
	s = sampleJob(c, "batch")
	if _, err := ctl.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: cur.GetService().GetId(), Version: cur.GetService().GetMeta().GetVersion(), Spec: spec}); err != nil {
		t.Fatal(err)
	}
	waitJob("run 3")
	if peak, seen = s.end(); peak > 3 || len(seen) != 10 {
		t.Fatalf("run 3: peak %d containers, %d tasks seen; want at most 3 and 10", peak, len(seen))
	}

	// A task that fails is restarted per its policy (in place by its
	// worker: 2 restarts), then its slot gives up; the wait after create
	// fails saying so.
	out, err := m.CLI("service", "create", "--name", "broken", "--mode", "replicated-job", "--restart-max-attempts", "2", img.Ref, "exit", "1")
	if err == nil || !strings.Contains(err.Error(), "job did not complete: 1 task of 1 failed and will not be restarted (max restart attempts (2) reached: task: non-zero exit (1))") {
		t.Fatalf("service create of a failing job: %v; want it to fail saying the task failed for good\n%s", err, out)
	}
	failedRow := regexp.MustCompile(`broken\.1 .*Shutdown\s+Failed .* ago \(2 restarts\)\s+"max restart attempts \(2\) reached: task: non-zero exit \(1\)"`)
	// Given up: no new task, nothing runs (the manager would replace a
	// failed task after 1 s).
	harness.Holds(t, 3*time.Second, func() error {
		ps := m.MustCLI("service", "ps", "broken")
		if !failedRow.MatchString(ps) || strings.Count(ps, "broken.") != 1 {
			return fmt.Errorf("service ps broken does not show its one task failed for good after 2 restarts:\n%s", ps)
		}
		if n, _ := c.ServiceContainers("broken"); n != 0 {
			return fmt.Errorf("%d containers of the given-up job run", n)
		}
		return nil
	})
	if line := lineWith(m.MustCLI("service", "ls"), "broken"); !regexp.MustCompile(`replicated job\s+0/1 \(0/1 completed\)`).MatchString(line) {
		t.Fatalf("service ls shows the failed job as %q; want 0/1 (0/1 completed)", line)
	}

	// A global job: one task to completion on each of the 3 nodes; the
	// wait after create follows it to the end.
	out = m.MustCLI("service", "create", "--name", "everywhere", "--mode", "global-job", img.Ref, "sleep", "1s")
	if !strings.Contains(out, "job complete") {
		t.Fatalf("service create of a global job did not wait for it to complete:\n%s", out)
	}
	if line := lineWith(m.MustCLI("service", "ls"), "everywhere"); !regexp.MustCompile(`global job\s+0/0 \(3/3 completed\)`).MatchString(line) {
		t.Fatalf("service ls shows the global job as %q; want global job 0/0 (3/3 completed)", line)
	}
	ps = m.MustCLI("service", "ps", "everywhere")
	for _, n := range c.Nodes() {
		if !regexp.MustCompile(`everywhere\.` + nodeID(t, n) + ` .*Complete\s+Complete`).MatchString(ps) {
			t.Fatalf("service ps shows no completed task on %s:\n%s", n.Name, ps)
		}
	}
}
