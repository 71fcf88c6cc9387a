package forward

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/internal/methodtest"
)

// The forwarding itself, against a cluster of real managers with leaders
// cut off and killed, is tested in the manager package (forward_test.go
// there).

func TestRetryFor(t *testing.T) {
	// Every leader-only method of the manager's services, with what a
	// follower may do with it when the leader it forwarded it to is
	// deposed or unreachable. A new method fails here until it is given a
	// rule on purpose.
	want := map[string]retry{
		"/shoal.v1.ControlService/GetCluster":      retryRead,
		"/shoal.v1.ControlService/ListNodes":       retryRead,
		"/shoal.v1.ControlService/GetNode":         retryRead,
		"/shoal.v1.ControlService/GetService":      retryRead,
		"/shoal.v1.ControlService/ListServices":    retryRead,
		"/shoal.v1.ControlService/ListTasks":       retryRead,
		"/shoal.v1.ControlService/GetTask":         retryRead,
		"/shoal.v1.ControlService/GetNetwork":      retryRead,
		"/shoal.v1.ControlService/ListNetworks":    retryRead,
		"/shoal.v1.ControlService/CreateService":   retryGuarded, // names are unique
		"/shoal.v1.ControlService/CreateNetwork":   retryGuarded,
		"/shoal.v1.ControlService/UpdateService":   retryGuarded, // the version read is required
		"/shoal.v1.ControlService/UpdateNode":      retryGuarded,
		"/shoal.v1.ControlService/UpdateCluster":   retryGuarded,
		"/shoal.v1.ControlService/GetUnlockKey":    retryRead,
		"/shoal.v1.ControlService/GetSecret":       retryRead,
		"/shoal.v1.ControlService/ListSecrets":     retryRead,
		"/shoal.v1.ControlService/GetConfig":       retryRead,
		"/shoal.v1.ControlService/ListConfigs":     retryRead,
		"/shoal.v1.ControlService/ListNodeVolumes": retryRead,
		"/shoal.v1.ControlService/ResolveImage":    retryRead,
		"/shoal.v1.ControlService/ValidateService": retryRead,
		"/shoal.v1.ControlService/CreateSecret":    retryGuarded, // names are unique
		"/shoal.v1.ControlService/CreateConfig":    retryGuarded,
		"/shoal.v1.ControlService/UpdateSecret":    retryGuarded, // the version read is required
		"/shoal.v1.ControlService/UpdateConfig":    retryGuarded,
		"/shoal.v1.ControlService/RemoveSecret":    retryNever,
		"/shoal.v1.ControlService/RemoveConfig":    retryNever,
		// By name, a second copy could remove an object made since.
		"/shoal.v1.ControlService/RemoveService": retryNever,
		"/shoal.v1.ControlService/RemoveNetwork": retryNever,
		"/shoal.v1.ControlService/RemoveNode":    retryNever,
		// Nodes retry these themselves, on their own terms.
		"/shoal.v1.CAService/IssueNodeCertificate":     retryNever,
		"/shoal.v1.CAService/RenewNodeCertificate":     retryNever,
		"/shoal.v1.DispatcherService/Heartbeat":        retryNever,
		"/shoal.v1.DispatcherService/UpdateTaskStatus": retryNever,
		"/shoal.v1.DispatcherService/AttachNetwork":    retryNever,
		"/shoal.v1.DispatcherService/DetachNetwork":    retryNever,
		"/shoal.v1.RaftService/JoinRaft":               retryNever,
		"/shoal.v1.RaftService/LeaveRaft":              retryNever,
	}
	methodtest.Covers(t, want, func(m string) bool {
		// Answered by any manager, or a stream (not forwarded: nodes go
		// to the leader; a follower relays SubscribeLogs itself).
		return auth.LeaderOnly(m) && !slices.Contains([]string{"/shoal.v1.DispatcherService/Assignments",
			"/shoal.v1.DispatcherService/ListenLogSubscriptions", "/shoal.v1.DispatcherService/PublishLogs",
			"/shoal.v1.ControlService/SubscribeLogs", "/shoal.v1.ControlService/Events"}, m)
	}, retryFor)
}

func (r retry) String() string {
	switch r {
	case retryNever:
		return "never"
	case retryRead:
		return "read"
	case retryGuarded:
		return "guarded"
	}
	return "?"
}

func TestResentOutcome(t *testing.T) {
	exists := fmt.Errorf("service name \"web\" is already in use by x1: %w", errdefs.ErrAlreadyExists)
	noLeader := errNoLeader
	deadline := errgrpc.FromGRPC(status.Error(codes.DeadlineExceeded, "context deadline exceeded"))
	for _, c := range []struct {
		name     string
		rule     retry
		resent   bool
		err      error
		code     codes.Code
		contains string
	}{
		{"success", retryGuarded, true, nil, codes.OK, ""},
		{"first copy refused: definite", retryGuarded, false, exists, codes.AlreadyExists, "already in use"},
		{"read resent: as it is", retryRead, true, noLeader, codes.Unavailable, "no leader"},
		{"never resent: as it is", retryNever, true, exists, codes.AlreadyExists, "already in use"},
		{"resent copy refused: unknown", retryGuarded, true, exists, codes.Unavailable, "refused it: service name \"web\" is already in use by x1; the first attempt may have been applied"},
		{"no leader for the copy: unknown", retryGuarded, true, noLeader, codes.Unavailable, "until a quorum is back; this call was sent to the earlier leader first and may have been applied there"},
		{"caller's deadline: as it is", retryGuarded, true, deadline, codes.DeadlineExceeded, "deadline"},
	} {
		got := errgrpc.ToGRPC(resentOutcome(c.rule, c.resent, c.err))
		if status.Code(got) != c.code || !strings.Contains(status.Convert(got).Message(), c.contains) {
			t.Errorf("%s: resentOutcome(%v, %v, %v) = %v; want %s containing %q", c.name, c.rule, c.resent, c.err, got, c.code, c.contains)
		}
	}
}
