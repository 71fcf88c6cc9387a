package logging

import (
	"io"
	"log"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// HCLog adapts a zap logger to hclog.Logger for hashicorp/raft.
func HCLog(z *zap.Logger) hclog.Logger { return &hcl{z: z} }

type hcl struct {
	z    *zap.Logger
	args []any
}

func (h *hcl) fields(args []any) []zap.Field {
	all := append(append([]any{}, h.args...), args...)
	out := make([]zap.Field, 0, len(all)/2+1)
	for i := 0; i < len(all); i += 2 {
		key, ok := all[i].(string)
		if !ok {
			key = "arg"
		}
		if i+1 < len(all) {
			out = append(out, zap.Any(key, all[i+1]))
		} else {
			out = append(out, zap.Any("extra", all[i]))
		}
	}
	return out
}

func (h *hcl) Log(level hclog.Level, msg string, args ...any) {
	switch level {
	case hclog.Trace, hclog.Debug:
		h.Debug(msg, args...)
	case hclog.Warn:
		h.Warn(msg, args...)
	case hclog.Error:
		h.Error(msg, args...)
	default:
		h.Info(msg, args...)
	}
}
func (h *hcl) Trace(msg string, args ...any) { h.z.Debug(msg, h.fields(args)...) }
func (h *hcl) Debug(msg string, args ...any) { h.z.Debug(msg, h.fields(args)...) }
func (h *hcl) Info(msg string, args ...any)  { h.z.Info(msg, h.fields(args)...) }
func (h *hcl) Warn(msg string, args ...any)  { h.z.Warn(msg, h.fields(args)...) }
func (h *hcl) Error(msg string, args ...any) { h.z.Error(msg, h.fields(args)...) }
func (h *hcl) IsTrace() bool                 { return false }
func (h *hcl) IsDebug() bool                 { return h.z.Core().Enabled(zapcore.DebugLevel) }
func (h *hcl) IsInfo() bool                  { return h.z.Core().Enabled(zapcore.InfoLevel) }
func (h *hcl) IsWarn() bool                  { return h.z.Core().Enabled(zapcore.WarnLevel) }
func (h *hcl) IsError() bool                 { return h.z.Core().Enabled(zapcore.ErrorLevel) }
func (h *hcl) ImpliedArgs() []any            { return h.args }
func (h *hcl) With(args ...any) hclog.Logger {
	return &hcl{z: h.z, args: append(append([]any{}, h.args...), args...)}
}
func (h *hcl) Name() string                        { return h.z.Name() }
func (h *hcl) Named(name string) hclog.Logger      { return &hcl{z: h.z.Named(name), args: h.args} }
func (h *hcl) ResetNamed(name string) hclog.Logger { return &hcl{z: h.z.Named(name), args: h.args} }
func (h *hcl) SetLevel(hclog.Level)                {}
func (h *hcl) GetLevel() hclog.Level {
	switch {
	case h.IsDebug():
		return hclog.Debug
	case h.IsInfo():
		return hclog.Info
	case h.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}
func (h *hcl) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return zap.NewStdLog(h.z)
}
func (h *hcl) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(nil).Writer()
}
