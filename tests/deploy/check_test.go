package deploy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

var t0 = time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)

// ct is a container of slot slot running tag, with ID "<tag>-<slot>" padded
// to 12 characters (its hostname).
func ct(slot int, tag string) harness.Container {
	id := fmt.Sprintf("%-12s", fmt.Sprintf("%s-%d", tag, slot))
	id = strings.ReplaceAll(id, " ", "x") + "rest-of-id"
	return harness.Container{ID: id, Name: fmt.Sprintf("web.%d.task%s%d", slot, tag, slot), Task: fmt.Sprintf("task%s%d", tag, slot),
		Env: []string{"PATH=/bin", "WHOAMI_IMAGE=" + tag}}
}

// at is a sample n×100 ms after t0.
func at(n int, cs ...harness.Container) Sample {
	return Sample{At: t0.Add(time.Duration(n) * 100 * time.Millisecond), Containers: cs}
}

func answer(n int, cs ...harness.Container) map[string]testimage.LoadAnswer {
	out := map[string]testimage.LoadAnswer{}
	for _, c := range cs {
		out[Hostname(c)] = testimage.LoadAnswer{N: 3, First: t0.Add(time.Duration(n) * 100 * time.Millisecond), Last: t0.Add(time.Hour)}
	}
	return out
}

func merge(ms ...map[string]testimage.LoadAnswer) map[string]testimage.LoadAnswer {
	out := map[string]testimage.LoadAnswer{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestCheckStartFirst(t *testing.T) {
	o1, o2, n1, n2 := ct(1, "1"), ct(2, "1"), ct(1, "2"), ct(2, "2")
	for _, tc := range []struct {
		name     string
		samples  []Sample
		answered map[string]testimage.LoadAnswer
		want     string // "" for no error, else part of it
	}{
		{"new answers, then old goes", []Sample{at(0, o1, o2), at(1, o1, o2, n1), at(3, o2, n1), at(4, o2, n1, n2), at(6, n1, n2)},
			merge(answer(2, n1), answer(5, n2)), ""},
		{"old gone before the new answered", []Sample{at(0, o1, o2), at(1, o1, o2, n1), at(3, o2, n1), at(6, o2, n1, n2)},
			answer(4, n1), "before its replacement"},
		{"old gone, replacement never answered", []Sample{at(0, o1, o2), at(1, o1, o2, n1), at(3, o2, n1)},
			nil, "ever answered"},
		{"stop-first shape: old gone before new starts", []Sample{at(0, o1, o2), at(1, o2), at(2, o2, n1)},
			answer(3, n1), "before its replacement"},
		{"a replica short from the start", []Sample{at(0, o1), at(1, o1, n2)}, nil, "only 1 containers were serving"},
		{"no old container", []Sample{at(0, n1)}, nil, "no container of image 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckStartFirst(tc.samples, tc.answered, "1", "2", 2)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckStartFirst = %v; want %q", err, tc.want)
			}
		})
	}
}

func TestCheckStopFirst(t *testing.T) {
	o1, o2, o3, n1, n2, n3 := ct(1, "1"), ct(2, "1"), ct(3, "1"), ct(1, "2"), ct(2, "2"), ct(3, "2")
	for _, tc := range []struct {
		name        string
		samples     []Sample
		parallelism int
		want        string
	}{
		{"one at a time", []Sample{at(0, o1, o2, o3), at(1, o2, o3), at(2, n1, o2, o3), at(3, n1, o3), at(4, n1, n2, o3), at(5, n1, n2), at(6, n1, n2, n3)}, 1, ""},
		{"two at a time", []Sample{at(0, o1, o2, o3), at(1, o3), at(2, n1, n2, o3), at(3, n1, n2), at(4, n1, n2, n3)}, 2, ""},
		{"two gone with parallelism 1", []Sample{at(0, o1, o2, o3), at(1, o3)}, 1, "1 containers were alive; want 2 to 3"},
		{"old and new of a slot both alive", []Sample{at(0, o1, o2, o3), at(1, o1, n1, o2)}, 1, "slot 1 had 2 containers alive"},
		{"more than replicas", []Sample{at(0, o1, o2, o3, n3)}, 1, "slot 3 had 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckStopFirst(tc.samples, 3, tc.parallelism)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckStopFirst = %v; want %q", err, tc.want)
			}
		})
	}
}

func TestCheckReplaced(t *testing.T) {
	o1, o2, n1, n2 := ct(1, "1"), ct(2, "1"), ct(1, "2"), ct(2, "2")
	restarted := n2
	restarted.Task = o2.Task
	for _, tc := range []struct {
		name          string
		before, after []harness.Container
		want          string
	}{
		{"all new", []harness.Container{o1, o2}, []harness.Container{n1, n2}, ""},
		{"an old container left", []harness.Container{o1, o2}, []harness.Container{n1, o2}, "from before the update still runs"},
		{"an old task in a new container", []harness.Container{o1, o2}, []harness.Container{n1, restarted}, "runs again"},
		{"wrong image", []harness.Container{o1}, []harness.Container{ct(3, "3")}, "runs image 3; want 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckReplaced(tc.before, tc.after, "2")
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckReplaced = %v; want %q", err, tc.want)
			}
		})
	}
}

func TestSlotsAndMinAlive(t *testing.T) {
	s := []Sample{at(0, ct(1, "1"), ct(2, "1")), at(1, ct(2, "1"), ct(1, "bad")), at(2, ct(1, "bad"), ct(2, "1"))}
	if got := SlotsOf(s, "bad"); fmt.Sprint(got) != "[1]" {
		t.Errorf("SlotsOf bad = %v; want [1]", got)
	}
	if got := MinAlive(s, "1"); got != 1 {
		t.Errorf("MinAlive 1 = %d; want 1", got)
	}
	if got := Slot(harness.Container{Name: "web.12.abc"}); got != 12 {
		t.Errorf("Slot(web.12.abc) = %d", got)
	}
}
