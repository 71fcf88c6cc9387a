package cli

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestContainerStatusHealth(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	started := timestamppb.New(now.Add(-3 * time.Second))
	for health, want := range map[string]string{
		"":          "Up 3 seconds",
		"starting":  "Up 3 seconds (health: starting)",
		"healthy":   "Up 3 seconds (healthy)",
		"unhealthy": "Up 3 seconds (unhealthy)",
	} {
		c := &shoalv1.Container{Status: "running", StartedAt: started, Health: health}
		if got := containerStatus(c, now); got != want {
			t.Errorf("health %q: %q; want docker's %q", health, got, want)
		}
	}
}
