package dockerapi

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// logOptions are Docker's logs query parameters.
type logOptions struct {
	stdout, stderr, timestamps, details bool
	opts                                *shoalv1.LogOptions
}

func parseLogOptions(r *http.Request) (logOptions, error) {
	o := logOptions{
		stdout: boolQuery(r, "stdout"), stderr: boolQuery(r, "stderr"),
		timestamps: boolQuery(r, "timestamps"), details: boolQuery(r, "details"),
		opts: &shoalv1.LogOptions{Follow: boolQuery(r, "follow"), Tail: -1},
	}
	if !o.stdout && !o.stderr {
		return o, fmt.Errorf("bad parameters: you must choose at least one stream: %w", errdefs.ErrInvalid)
	}
	q := r.URL.Query()
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || n < 0 {
			return o, invalidParam("tail", t, `a number of lines or "all"`)
		}
		o.opts.Tail = n
	}
	for _, p := range []struct {
		key string
		set **timestamppb.Timestamp
	}{{"since", &o.opts.Since}, {"until", &o.opts.Until}} {
		v := q.Get(p.key)
		if v == "" || v == "0" {
			continue
		}
		t, err := unixTime(v)
		if err != nil {
			return o, invalidParam(p.key, v, "a Unix time in seconds, such as 1700000000.5")
		}
		*p.set = timestamppb.New(t)
	}
	return o, nil
}

// unixTime reads Docker's "SECONDS[.NANOSECONDS]" times.
func unixTime(v string) (time.Time, error) {
	sec, frac, _ := strings.Cut(v, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		frac += strings.Repeat("0", 9-len(frac))
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(s, ns), nil
}

func (s *Server) serviceLogs(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.cfg.Control.GetService(r.Context(), &shoalv1.GetServiceRequest{ServiceId: r.PathValue("id")})
	if err != nil {
		return err
	}
	return s.logs(w, r, &shoalv1.LogSelector{ServiceIds: []string{svc.GetService().GetId()}}, svc.GetService().GetSpec().GetTask().GetContainer().GetTty())
}

func (s *Server) taskLogs(w http.ResponseWriter, r *http.Request) error {
	t, err := s.cfg.Control.GetTask(r.Context(), &shoalv1.GetTaskRequest{TaskId: r.PathValue("id")})
	if err != nil {
		return err
	}
	return s.logs(w, r, &shoalv1.LogSelector{TaskIds: []string{t.GetTask().GetId()}}, t.GetTask().GetSpec().GetContainer().GetTty())
}

// logs streams a subscription's lines in Docker's form: multiplexed
// stdout and stderr frames (raw with a TTY), each line prefixed by its
// time (timestamps) and its details (details: the swarm's context, which
// `docker service logs` reads to name each line's task and node).
func (s *Server) logs(w http.ResponseWriter, r *http.Request, sel *shoalv1.LogSelector, tty bool) error {
	o, err := parseLogOptions(r)
	if err != nil {
		return err
	}
	stream, err := s.cfg.Control.SubscribeLogs(r.Context(), &shoalv1.SubscribeLogsRequest{Selector: sel, Options: o.opts})
	if err != nil {
		return err
	}
	if tty {
		w.Header().Set("Content-Type", types.MediaTypeRawStream)
	} else {
		w.Header().Set("Content-Type", types.MediaTypeMultiplexedStream)
	}
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	var buf []byte
	for {
		resp, err := stream.Recv()
		if err != nil {
			if err != io.EOF && r.Context().Err() == nil {
				s.log.Debug("docker api: log stream ended", zap.Error(err))
			}
			return nil
		}
		for _, m := range resp.GetMessages() {
			out := stdcopy.Stdout
			if m.GetStream() == shoalv1.LogStream_LOG_STREAM_STDERR {
				out = stdcopy.Stderr
			}
			if out == stdcopy.Stdout && !o.stdout || out == stdcopy.Stderr && !o.stderr {
				continue
			}
			buf = buf[:0]
			if !tty {
				buf = append(buf, byte(out), 0, 0, 0, 0, 0, 0, 0)
			}
			start := len(buf)
			if o.timestamps {
				buf = append(buf, m.GetTime().AsTime().UTC().Format("2006-01-02T15:04:05.000000000Z07:00")...)
				buf = append(buf, ' ')
			}
			if o.details {
				c := m.GetContext()
				buf = append(buf, "com.docker.swarm.node.id="+url.QueryEscape(c.GetNodeId())+
					",com.docker.swarm.service.id="+url.QueryEscape(c.GetServiceId())+
					",com.docker.swarm.task.id="+url.QueryEscape(c.GetTaskId())+" "...)
			}
			buf = append(buf, m.GetData()...)
			if !tty {
				binary.BigEndian.PutUint32(buf[4:8], uint32(len(buf)-start))
			}
			if _, err := w.Write(buf); err != nil {
				return nil
			}
		}
		if fl != nil {
			fl.Flush()
		}
	}
}
