package addrs

import (
	"fmt"
	"testing"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestTaskHolds(t *testing.T) {
	const run, stop = shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.TaskState_TASK_STATE_SHUTDOWN
	for _, tc := range []struct {
		state, desired shoalv1.TaskState
		want           bool
	}{
		{shoalv1.TaskState_TASK_STATE_NEW, run, true},
		{shoalv1.TaskState_TASK_STATE_PENDING, run, true},
		{shoalv1.TaskState_TASK_STATE_PENDING, stop, false},
		{shoalv1.TaskState_TASK_STATE_ASSIGNED, stop, false},
		{shoalv1.TaskState_TASK_STATE_ACCEPTED, stop, true},
		{run, run, true},
		{run, stop, true},
		{shoalv1.TaskState_TASK_STATE_FAILED, run, false},
		{shoalv1.TaskState_TASK_STATE_SHUTDOWN, stop, false},
		{shoalv1.TaskState_TASK_STATE_REJECTED, run, false},
	} {
		tk := &shoalv1.Task{DesiredState: tc.desired, Status: &shoalv1.TaskStatus{State: tc.state}}
		if got := TaskHolds(tk); got != tc.want {
			t.Errorf("TaskHolds(%v, desired %v) = %v; want %v", tc.state, tc.desired, got, tc.want)
		}
	}
}

// A task holds its addresses only while TaskHolds says so; a service
// holds its VIPs.
func TestHeldByTasksAndServices(t *testing.T) {
	iface := []*shoalv1.TaskNetwork{{NetworkId: "app", Addr: "10.0.5.9/24"}}
	running := &shoalv1.Task{Networks: iface, DesiredState: shoalv1.TaskState_TASK_STATE_RUNNING, Status: &shoalv1.TaskStatus{State: shoalv1.TaskState_TASK_STATE_RUNNING}}
	ended := &shoalv1.Task{Networks: iface, DesiredState: shoalv1.TaskState_TASK_STATE_SHUTDOWN, Status: &shoalv1.TaskStatus{State: shoalv1.TaskState_TASK_STATE_FAILED}}
	svc := &shoalv1.Service{Endpoint: &shoalv1.ServiceEndpoint{VirtualIps: []*shoalv1.VirtualIP{{NetworkId: "app", Addr: "10.0.5.2/24"}, {NetworkId: "x", Addr: "bad"}}}}
	for _, tc := range []struct {
		name string
		obj  any
		want string
	}{
		{"running task", running, "[{app 10.0.5.9}]"},
		{"ended task", ended, "[]"},
		{"service (a bad address skipped)", svc, "[{app 10.0.5.2}]"},
		{"a network", &shoalv1.Network{}, "[]"},
	} {
		if got := fmt.Sprint(Held(tc.obj)); got != tc.want {
			t.Errorf("%s: %s; want %s", tc.name, got, tc.want)
		}
	}
}

func TestPortKey(t *testing.T) {
	for _, tc := range []struct {
		port  uint32
		proto shoalv1.PortProtocol
		want  string
	}{
		{8080, shoalv1.PortProtocol_PORT_PROTOCOL_TCP, "8080/tcp"},
		{53, shoalv1.PortProtocol_PORT_PROTOCOL_UDP, "53/udp"},
		{80, shoalv1.PortProtocol_PORT_PROTOCOL_UNSPECIFIED, "80/tcp"},
	} {
		if got := PortKey(tc.port, tc.proto); got != tc.want {
			t.Errorf("PortKey(%d, %v) = %q; want %q", tc.port, tc.proto, got, tc.want)
		}
	}
}
