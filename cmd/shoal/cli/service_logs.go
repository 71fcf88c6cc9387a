package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

type serviceLogsFlags struct {
	follow, timestamps, details, noTaskIDs, noTrunc, raw, noResolve bool
	tail, since, until                                              string
}

func newServiceLogsCmd(g *globals) *cobra.Command {
	var f serviceLogsFlags
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] SERVICE|TASK",
		Short: "Fetch the logs of a service or task",
		Long: "Fetch the logs of every task of a service, on every node, or of one task. Each line is prefixed with its task and\n" +
			"node (web.2.ztalzxy0pqdb@host2); a task's standard error goes to standard error.",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.serviceLogs(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.follow, "follow", "f", false, "Follow log output")
	fl.StringVarP(&f.tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	fl.StringVar(&f.since, "since", "", `Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	fl.StringVar(&f.until, "until", "", `Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	fl.BoolVarP(&f.timestamps, "timestamps", "t", false, "Show timestamps")
	fl.BoolVar(&f.details, "details", false, "Show extra details provided to logs")
	fl.BoolVar(&f.noTaskIDs, "no-task-ids", false, "Do not include task IDs in output")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "Do not truncate output")
	fl.BoolVar(&f.raw, "raw", false, "Do not neatly format logs")
	fl.BoolVar(&f.noResolve, "no-resolve", false, "Do not map IDs to Names in output")
	return cmd
}

// parseTail is docker's --tail: "all", or a count; anything else (a
// negative number, a word) is all, as docker's.
func parseTail(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// parseLogTime is docker's --since/--until: an RFC 3339 time (its date
// alone, or without seconds or zone: local time), Unix seconds with an
// optional fraction, or a duration back from now.
func parseLogTime(flag, v string, now time.Time) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return timestamppb.New(now.Add(-d)), nil
	}
	if sec, frac, ok := strings.Cut(v, "."); allDigits(sec) && (!ok || allDigits(frac)) {
		s, _ := strconv.ParseInt(sec, 10, 64)
		var ns int64
		if ok {
			frac = (frac + "000000000")[:9]
			ns, _ = strconv.ParseInt(frac, 10, 64)
		}
		return timestamppb.New(time.Unix(s, ns)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return timestamppb.New(t), nil
		}
	}
	return nil, fmt.Errorf("invalid value for %q: failed to parse value as time or duration: %q", flag, v)
}

// parseWindow is --since and --until, both read against one now.
func parseWindow(since, until string) (s, u *timestamppb.Timestamp, err error) {
	now := time.Now()
	if s, err = parseLogTime("since", since, now); err != nil {
		return nil, nil, err
	}
	if u, err = parseLogTime("until", until, now); err != nil {
		return nil, nil, err
	}
	return s, u, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// rfc3339NanoFixed is docker's timestamp of a log line: nanoseconds
// always nine digits, so that lines align.
const rfc3339NanoFixed = "2006-01-02T15:04:05.000000000Z07:00"

func (g *globals) serviceLogs(cmd *cobra.Command, target string, f serviceLogsFlags) error {
	ctx := cmd.Context()
	since, until, err := parseWindow(f.since, f.until)
	if err != nil {
		return err
	}
	c, done, err := g.control()
	if err != nil {
		return err
	}
	defer done()
	req := &shoalv1.SubscribeLogsRequest{Selector: &shoalv1.LogSelector{}, Options: &shoalv1.LogOptions{
		Follow: f.follow, Tail: parseTail(f.tail), Since: since, Until: until,
	}}
	padding := 1
	svc, err := c.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: target})
	switch {
	case err == nil:
		req.Selector.ServiceIds = []string{svc.GetService().GetId()}
		if r := svc.GetService().GetSpec().GetReplicated(); r != nil {
			padding = len(strconv.Itoa(int(r.GetReplicas())))
		}
	case status.Code(err) == codes.NotFound:
		t, terr := c.GetTask(ctx, &shoalv1.GetTaskRequest{TaskId: target})
		if status.Code(terr) == codes.NotFound {
			return fmt.Errorf("no such task or service: %s", target)
		}
		if terr != nil {
			return terr
		}
		req.Selector.TaskIds = []string{t.GetTask().GetId()}
		padding = len(strconv.Itoa(int(t.GetTask().GetSlot())))
	default:
		return err
	}
	stream, err := c.SubscribeLogs(ctx, req)
	if err != nil {
		return err
	}
	p := &logPrinter{g: g, c: c, f: f, padding: padding, out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), prefixes: map[string]string{}}
	var warnings []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted while following
			}
			return err
		}
		for _, m := range resp.GetMessages() {
			if err := p.print(ctx, m); err != nil {
				return err
			}
		}
		for _, w := range resp.GetWarnings() {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			warnings = append(warnings, w)
		}
	}
	if len(warnings) > 0 {
		// docker's words for a stream that misses a part.
		return fmt.Errorf("warning: incomplete log stream. some logs could not be retrieved for the following reasons: %s", strings.Join(warnings, ", "))
	}
	return nil
}

// logPrinter formats lines as docker's service logs does.
type logPrinter struct {
	g           *globals
	c           shoalv1.ControlServiceClient
	f           serviceLogsFlags
	padding     int
	out, errOut io.Writer
	prefixes    map[string]string // by task ID
	hosts       map[string]string
}

// prefix is web.2.ztalzxy0pqdb@host2, padded to the widest slot.
func (p *logPrinter) prefix(ctx context.Context, lc *shoalv1.LogContext) string {
	key := lc.GetTaskId() + "@" + lc.GetNodeId()
	if s, ok := p.prefixes[key]; ok {
		return s
	}
	node := lc.GetNodeId()
	if !p.f.noResolve {
		if p.hosts == nil {
			p.hosts = p.g.hostnames(ctx, p.c)
		}
		if h, ok := p.hosts[node]; ok {
			node = h
		}
	}
	name, slot := lc.GetServiceId(), 0
	if t, err := p.c.GetTask(ctx, &shoalv1.GetTaskRequest{TaskId: lc.GetTaskId()}); err == nil {
		slot = int(t.GetTask().GetSlot())
		if !p.f.noResolve {
			name = t.GetTask().GetServiceName()
		}
		if slot > 0 {
			name += "." + strconv.Itoa(slot)
		} else {
			name += "." + t.GetTask().GetNodeId()
		}
	}
	if !p.f.noTaskIDs {
		id := lc.GetTaskId()
		if !p.f.noTrunc {
			id = shortID(id)
		}
		name += "." + id
	}
	pad := p.padding - len(strconv.Itoa(slot))
	s := name + "@" + node + strings.Repeat(" ", max(pad, 0))
	p.prefixes[key] = s
	return s
}

func (p *logPrinter) print(ctx context.Context, m *shoalv1.LogMessage) error {
	var b strings.Builder
	if p.f.timestamps {
		b.WriteString(m.GetTime().AsTime().UTC().Format(rfc3339NanoFixed))
		b.WriteByte(' ')
	}
	if !p.f.raw {
		b.WriteString(p.prefix(ctx, m.GetContext()))
		b.WriteString("    | ")
	}
	if p.f.details {
		lc := m.GetContext()
		fmt.Fprintf(&b, "com.docker.swarm.node.id=%s,com.docker.swarm.service.id=%s,com.docker.swarm.task.id=%s ", lc.GetNodeId(), lc.GetServiceId(), lc.GetTaskId())
	}
	b.Write(m.GetData())
	w := p.out
	if m.GetStream() == shoalv1.LogStream_LOG_STREAM_STDERR {
		w = p.errOut
	}
	_, err := io.WriteString(w, b.String())
	return err
}
