package logging

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestStdLogLevels(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := StdLog(zap.New(core))
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:5",
		"[WARN] memberlist: Was able to connect to b over TCP but UDP probes failed",
		"[ERR] memberlist: Failed to send ping",
		"[INFO] memberlist: Marking b as failed",
		"no level at all",
	} {
		l.Print(line)
	}
	want := []struct {
		level zapcore.Level
		msg   string
	}{
		{zapcore.DebugLevel, "memberlist: Stream connection from=127.0.0.1:5"},
		{zapcore.WarnLevel, "memberlist: Was able to connect to b over TCP but UDP probes failed"},
		{zapcore.ErrorLevel, "memberlist: Failed to send ping"},
		{zapcore.InfoLevel, "memberlist: Marking b as failed"},
		{zapcore.InfoLevel, "no level at all"},
	}
	got := logs.All()
	if len(got) != len(want) {
		t.Fatalf("logged %d entries; want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Level != w.level || got[i].Message != w.msg {
			t.Errorf("entry %d = %v %q; want %v %q", i, got[i].Level, got[i].Message, w.level, w.msg)
		}
	}
}
