package worker

import (
	"testing"

	"github.com/shoal-run/shoal/runtime/image"
)

func TestPullProgress(t *testing.T) {
	var p PullProgress
	for _, tc := range []struct {
		ev     image.Progress
		want   string
		wantOK bool
	}{
		{image.Progress{Status: image.StatusResolving}, "", false},
		{image.Progress{Layer: "a", Status: image.StatusDownloading, Current: 1e6, Total: 4e6}, "pulling image: 0 of 1 layers, 1.0 of 4.0 MB", true},
		{image.Progress{Layer: "b", Status: image.StatusExists, Total: 2e6}, "pulling image: 1 of 2 layers, 3.0 of 6.0 MB", true},
		{image.Progress{Layer: "a", Status: image.StatusDownloading, Current: 3e6, Total: 4e6}, "pulling image: 1 of 2 layers, 5.0 of 6.0 MB", true},
		{image.Progress{Layer: "a", Status: image.StatusDone, Current: 4e6, Total: 4e6}, "pulling image: 2 of 2 layers, 6.0 of 6.0 MB", true},
	} {
		got, ok := p.Add(tc.ev)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("Add(%+v) = %q, %v; want %q, %v", tc.ev, got, ok, tc.want, tc.wantOK)
		}
	}
}
