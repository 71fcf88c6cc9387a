package cli

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// source replays batches of events with the given actor IDs, then ends
// with err (nil: the end of the stream).
func source(scope string, err error, batches ...[]string) eventSource {
	return eventSource{scope, func() ([]*shoalv1.Event, error) {
		if len(batches) == 0 {
			if err == nil {
				return nil, io.EOF
			}
			return nil, err
		}
		var evs []*shoalv1.Event
		for _, id := range batches[0] {
			evs = append(evs, &shoalv1.Event{ActorId: id})
		}
		batches = batches[1:]
		return evs, nil
	}}
}

// mergeEvents hands on every batch of every source, in each source's
// order and with its scope, until all have ended; an error of one ends
// it.
func TestMergeEvents(t *testing.T) {
	got := map[string][]string{}
	err := mergeEvents(context.Background(), []eventSource{
		source("local", nil, []string{"c1", "c2"}, []string{"c3"}),
		source("swarm", nil, []string{"s1"}, []string{"s2", "s3"}, []string{"s4"}),
	}, func(b scoped) error {
		for _, e := range b.events {
			got[b.scope] = append(got[b.scope], e.GetActorId())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got["local"], []string{"c1", "c2", "c3"}) || !slices.Equal(got["swarm"], []string{"s1", "s2", "s3", "s4"}) {
		t.Fatalf("merged %v", got)
	}
	broken := errors.New("the manager went away")
	err = mergeEvents(context.Background(), []eventSource{
		source("local", nil, []string{"c1"}),
		source("swarm", broken, []string{"s1"}),
	}, func(scoped) error { return nil })
	if !errors.Is(err, broken) {
		t.Fatalf("a source's error: %v", err)
	}
	stop := errors.New("stdout closed")
	err = mergeEvents(context.Background(), []eventSource{source("local", nil, []string{"c1"}, []string{"c2"})}, func(scoped) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("the writer's error: %v", err)
	}
}
