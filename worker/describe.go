package worker

import (
	"fmt"
	"os"
	"runtime"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Describe is the node description reported at join and in every
// heartbeat (the leader stores it when it changes): this node's hostname
// (the machine's unless hostname is given), platform and capacity, its
// engine labels and the daemon's version.
func Describe(hostname string, engineLabels map[string]string, version string) *shoalv1.NodeDescription {
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	return &shoalv1.NodeDescription{
		Hostname:     hostname,
		Platform:     &shoalv1.Platform{Os: runtime.GOOS, Architecture: runtime.GOARCH},
		Resources:    &shoalv1.Resources{NanoCpus: int64(runtime.NumCPU()) * 1e9, MemoryBytes: memTotal()},
		EngineLabels: engineLabels,
		Version:      version,
	}
}

func memTotal() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int64
	if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err != nil {
		return 0
	}
	return kb * 1024
}
