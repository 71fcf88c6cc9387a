// Package methodtest lists the gRPC methods of the manager's services from
// the generated descriptors, for tests that must cover every method (who
// may call it, whether a follower may resend it), so a method added later
// is checked too.
package methodtest

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// ManagerServices are the services a manager registers (see manager.Register).
var ManagerServices = []protoreflect.FullName{"shoal.v1.ControlService", "shoal.v1.CAService", "shoal.v1.DispatcherService", "shoal.v1.RaftService"}

// Of lists the full gRPC method names of a service, from the
// generated descriptors, so a method added later is checked too.
func Of(t *testing.T, service protoreflect.FullName) []string {
	t.Helper()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(service)
	if err != nil {
		t.Fatalf("find %s: %v", service, err)
	}
	sd := d.(protoreflect.ServiceDescriptor)
	var out []string
	for i := range sd.Methods().Len() {
		out = append(out, "/"+string(service)+"/"+string(sd.Methods().Get(i).Name()))
	}
	if len(out) == 0 {
		t.Fatalf("%s has no methods", service)
	}
	return out
}

// Covers checks a table that gives every method of the manager's services
// its expected value: each method that include accepts must be in want
// (a method added later fails until someone decides its value), got must
// agree with want, and want may name no method the services lack.
func Covers[V comparable](t *testing.T, want map[string]V, include func(method string) bool, got func(method string) V) {
	t.Helper()
	seen := map[string]bool{}
	for _, svc := range ManagerServices {
		for _, m := range Of(t, svc) {
			if !include(m) {
				continue
			}
			seen[m] = true
			w, ok := want[m]
			if !ok {
				t.Errorf("method %s has no expected value in this test: decide it", m)
				continue
			}
			if g := got(m); g != w {
				t.Errorf("%s: got %v; want %v", m, g, w)
			}
		}
	}
	for m := range want {
		if !seen[m] {
			t.Errorf("method %s is expected but not among the manager's services", m)
		}
	}
}
