package cli

import (
	"strings"
	"testing"
	"time"
)

func TestParseTail(t *testing.T) {
	for in, want := range map[string]int64{"all": -1, "0": 0, "10": 10, "-3": -1, "ten": -1, "": -1} {
		if got := parseTail(in); got != want {
			t.Errorf("parseTail(%q) = %d; want %d", in, got, want)
		}
	}
}

func TestParseLogTime(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	local := func(s string) time.Time { t, _ := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local); return t }
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"10m", now.Add(-10 * time.Minute), ""},
		{"1h30m", now.Add(-90 * time.Minute), ""},
		{"1700000000", time.Unix(1700000000, 0), ""},
		{"1700000000.5", time.Unix(1700000000, 500000000), ""},
		{"2026-12-03T09:00:00Z", time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC), ""},
		{"2026-12-03T09:00:00.25+01:00", time.Date(2026, 12, 3, 8, 0, 0, 250000000, time.UTC), ""},
		{"2026-12-03T09:00:00", local("2026-12-03T09:00:00"), ""},
		{"2026-12-03", local("2026-12-03T00:00:00"), ""},
		{"yesterday", time.Time{}, `invalid value for "since": failed to parse value as time or duration: "yesterday"`},
		{"12.x", time.Time{}, "failed to parse"},
	} {
		got, err := parseLogTime("since", tc.in, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseLogTime(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !got.AsTime().Equal(tc.want) {
			t.Errorf("parseLogTime(%q) = %v, %v; want %v", tc.in, got.AsTime(), err, tc.want)
		}
	}
	if got, err := parseLogTime("until", "", now); got != nil || err != nil {
		t.Errorf("an empty value = %v, %v; want unset", got, err)
	}
}

func TestFormatEvent(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 1, 5, time.UTC)
	m := eventMessage{Type: "node", Action: "update", Actor: eventActor{ID: "n1", Attributes: map[string]string{"state.new": "down", "name": "host2", "state.old": "ready"}}, TimeNano: at.UnixNano()}
	want := at.Local().Format(rfc3339NanoFixed) + " node update n1 (name=host2, state.new=down, state.old=ready)\n"
	if got := formatEvent(m); got != want {
		t.Errorf("formatEvent = %q; want %q", got, want)
	}
	m.Actor.Attributes = nil
	if got := formatEvent(m); !strings.HasSuffix(got, " node update n1\n") {
		t.Errorf("formatEvent without attributes = %q", got)
	}
}
