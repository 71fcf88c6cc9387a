package logging

import (
	"bytes"
	"log"

	"go.uber.org/zap"
)

// StdLog adapts a zap logger to a standard *log.Logger for libraries
// that log lines like "[WARN] memberlist: ..." (hashicorp/memberlist).
// The bracketed level picks the zap level; lines without one are Info.
func StdLog(z *zap.Logger) *log.Logger { return log.New(stdWriter{z: z}, "", 0) }

type stdWriter struct{ z *zap.Logger }

func (w stdWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level, msg := levelOf(line)
	switch level {
	case "DEBUG", "TRACE":
		w.z.Debug(msg)
	case "WARN":
		w.z.Warn(msg)
	case "ERR", "ERROR":
		w.z.Error(msg)
	default:
		w.z.Info(msg)
	}
	return len(p), nil
}

// levelOf splits "[LEVEL] rest" into its level and the rest.
func levelOf(line []byte) (string, string) {
	if len(line) > 0 && line[0] == '[' {
		if end := bytes.IndexByte(line, ']'); end > 0 {
			return string(line[1:end]), string(bytes.TrimSpace(line[end+1:]))
		}
	}
	return "", string(line)
}
