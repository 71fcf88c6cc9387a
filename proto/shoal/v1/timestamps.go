package shoalv1

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// Times converts repeated timestamps of the schema (a task's
// restart_history, its status's restart_times) to times.
func Times(ts []*timestamppb.Timestamp) []time.Time {
	if len(ts) == 0 {
		return nil
	}
	out := make([]time.Time, len(ts))
	for i, t := range ts {
		out[i] = t.AsTime()
	}
	return out
}

// Timestamps converts times to repeated timestamps of the schema.
func Timestamps(ts []time.Time) []*timestamppb.Timestamp {
	if len(ts) == 0 {
		return nil
	}
	out := make([]*timestamppb.Timestamp, len(ts))
	for i, t := range ts {
		out[i] = timestamppb.New(t)
	}
	return out
}
