package deploy

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// CheckStartFirst checks a start-first update from tag from to tag to
// against what ran: each slot's container of from (alive in the first
// sample) is first seen gone only after a container of to in the same slot
// answered a request (through a load balancer, so it was healthy), and no
// sample has fewer than replicas containers that are serving (of from, or
// of to and answered before the sample).
func CheckStartFirst(samples []Sample, answered map[string]testimage.LoadAnswer, from, to string, replicas int) error {
	if len(samples) == 0 {
		return fmt.Errorf("no samples")
	}
	old := map[string]harness.Container{} // container ID → the old container
	for _, c := range samples[0].Containers {
		if Tag(c) == from {
			old[c.ID] = c
		}
	}
	if len(old) == 0 {
		return fmt.Errorf("no container of image %s in the first sample", from)
	}
	// The earliest answer by a container of to, per slot.
	firstNew := map[int]time.Time{}
	newHost := map[int]string{}
	for _, s := range samples {
		for _, c := range s.Containers {
			if Tag(c) != to {
				continue
			}
			if a, ok := answered[Hostname(c)]; ok && a.N > 0 {
				if f, seen := firstNew[Slot(c)]; !seen || a.First.Before(f) {
					firstNew[Slot(c)], newHost[Slot(c)] = a.First, Hostname(c)
				}
			}
		}
	}
	gone := map[string]time.Time{}
	for _, s := range samples {
		alive := map[string]bool{}
		for _, c := range s.Containers {
			alive[c.ID] = true
		}
		for id := range old {
			if _, done := gone[id]; !done && !alive[id] {
				gone[id] = s.At
			}
		}
	}
	for id, c := range old {
		g, ok := gone[id]
		if !ok {
			continue // still alive at the last sample: CheckReplaced says so
		}
		f, ok := firstNew[Slot(c)]
		if !ok {
			return fmt.Errorf("slot %d: the old container %s (task %s) was gone at %s, and no container of %s in that slot ever answered",
				Slot(c), Hostname(c), c.Task, g.Format("15:04:05.000"), to)
		}
		if !f.Before(g) {
			return fmt.Errorf("slot %d: the old container %s (task %s) was gone at %s, before its replacement %s first answered at %s",
				Slot(c), Hostname(c), c.Task, g.Format("15:04:05.000"), newHost[Slot(c)], f.Format("15:04:05.000"))
		}
	}
	for _, s := range samples {
		serving := 0
		for _, c := range s.Containers {
			switch Tag(c) {
			case from:
				serving++
			case to:
				if a, ok := answered[Hostname(c)]; ok && a.N > 0 && a.First.Before(s.At) {
					serving++
				}
			}
		}
		if serving < replicas {
			return fmt.Errorf("at %s only %d containers were serving (running %s, or running %s and answered before); want %d:\n%s",
				s.At.Format("15:04:05.000"), serving, from, to, replicas, describe(s))
		}
	}
	return nil
}

// CheckStopFirst checks a stop-first update against what ran: in no
// sample are two containers of one slot alive, more than replicas alive,
// or fewer than replicas-parallelism.
func CheckStopFirst(samples []Sample, replicas, parallelism int) error {
	if len(samples) == 0 {
		return fmt.Errorf("no samples")
	}
	for _, s := range samples {
		slots := map[int]int{}
		for _, c := range s.Containers {
			slots[Slot(c)]++
		}
		for slot, n := range slots {
			if n > 1 {
				return fmt.Errorf("at %s slot %d had %d containers alive (stop-first: the old one exits before its replacement starts):\n%s",
					s.At.Format("15:04:05.000"), slot, n, describe(s))
			}
		}
		if n := len(s.Containers); n > replicas || n < replicas-parallelism {
			return fmt.Errorf("at %s %d containers were alive; want %d to %d (stop-first, parallelism %d):\n%s",
				s.At.Format("15:04:05.000"), n, replicas-parallelism, replicas, parallelism, describe(s))
		}
	}
	return nil
}

// CheckReplaced checks that after an update every container alive runs
// tag to and none is one of before: new containers and new tasks, all.
func CheckReplaced(before, after []harness.Container, to string) error {
	oldIDs, oldTasks := map[string]bool{}, map[string]bool{}
	for _, c := range before {
		oldIDs[c.ID], oldTasks[c.Task] = true, true
	}
	for _, c := range after {
		switch {
		case oldIDs[c.ID]:
			return fmt.Errorf("container %s (task %s, pid %d) from before the update still runs", Hostname(c), c.Task, c.Pid)
		case oldTasks[c.Task]:
			return fmt.Errorf("task %s from before the update runs again (container %s)", c.Task, Hostname(c))
		case Tag(c) != to:
			return fmt.Errorf("container %s (task %s) runs image %s; want %s", Hostname(c), c.Task, Tag(c), to)
		}
	}
	return nil
}

// CheckAnswered checks that every container in cs answered a request
// since since.
func CheckAnswered(cs []harness.Container, answered map[string]testimage.LoadAnswer, since time.Time) error {
	var missing []string
	for _, c := range cs {
		if a, ok := answered[Hostname(c)]; !ok || a.N == 0 || a.Last.Before(since) {
			missing = append(missing, fmt.Sprintf("%s (slot %d, task %s)", Hostname(c), Slot(c), c.Task))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no answer from %s; answered by %v", strings.Join(missing, ", "), keys(answered))
	}
	return nil
}

// SlotsOf lists the slots that ever had a container of tag.
func SlotsOf(samples []Sample, tag string) []int {
	seen := map[int]bool{}
	for _, s := range samples {
		for _, c := range s.Containers {
			if Tag(c) == tag {
				seen[Slot(c)] = true
			}
		}
	}
	var out []int
	for s := range seen {
		out = append(out, s)
	}
	sort.Ints(out)
	return out
}

// MinAlive is the fewest containers of tag alive in any sample.
func MinAlive(samples []Sample, tag string) int {
	min := -1
	for _, s := range samples {
		n := 0
		for _, c := range s.Containers {
			if Tag(c) == tag {
				n++
			}
		}
		if min < 0 || n < min {
			min = n
		}
	}
	return min
}

func describe(s Sample) string {
	var lines []string
	for _, c := range s.Containers {
		lines = append(lines, fmt.Sprintf("  slot %d %s image %s task %s pid %d", Slot(c), Hostname(c), Tag(c), c.Task, c.Pid))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
