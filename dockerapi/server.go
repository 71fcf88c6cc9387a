// Package dockerapi serves the Docker Engine API over Shoal, so the docker
// CLI, `docker stack deploy` and Docker's SDKs drive a Shoal cluster
// unmodified. Requests and responses are Docker's own Go types
// (github.com/moby/moby/api); package convert maps them to and from Shoal's
// specs. The server holds no state of its own: every call becomes calls
// of the node's gRPC services (the cluster's control API through the
// node, the node's runtime), so a worker answers its local endpoints and
// refuses the cluster's as Docker's engine does.
package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/moby/moby/api/types/common"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The API versions served: from the oldest the docker CLI of Debian 12
// speaks (20.10) to the newest of docker CLI 28.
const (
	MinAPIVersion = "1.41"
	MaxAPIVersion = "1.50"
)

// Host is what the node tells about itself in /info and /version.
type Host struct {
	Version  string // Shoal's
	Hostname string
	DataDir  string
	Labels   map[string]string
	// CgroupVersion is "1" or "2".
	CgroupVersion string
}

// Config configures a Server.
type Config struct {
	Control shoalv1.ControlServiceClient
	Swarm   shoalv1.SwarmServiceClient
	Runtime shoalv1.RuntimeServiceClient
	Host    Host
	Log     *zap.Logger
}

// Server is the Docker Engine API's handler.
type Server struct {
	cfg Config
	mux *http.ServeMux
	log *zap.Logger
}

// New builds the handler.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Log}
	s.routes()
	return s
}

type handler func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(pattern string, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// ServeHTTP strips and checks the API version, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	version := MaxAPIVersion
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v"); ok {
		if i := strings.IndexByte(rest, '/'); i > 0 && looksLikeVersion(rest[:i]) {
			version = rest[:i]
			r.URL.Path = rest[i:]
			r.URL.RawPath = ""
		}
	}
	w.Header().Set("Api-Version", MaxAPIVersion)
	w.Header().Set("Server", "Shoal/"+s.cfg.Host.Version+" (linux)")
	w.Header().Set("Ostype", "linux")
	switch {
	case compareVersions(version, MinAPIVersion) < 0:
		s.writeError(w, r, fmt.Errorf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version: %w", version, MinAPIVersion, errdefs.ErrInvalid))
		return
	case compareVersions(version, MaxAPIVersion) > 0:
		s.writeError(w, r, fmt.Errorf("client version %s is too new. Maximum supported API version is %s: %w", version, MaxAPIVersion, errdefs.ErrInvalid))
		return
	}
	s.log.Debug("docker api", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("version", version))
	s.mux.ServeHTTP(w, r)
}

func looksLikeVersion(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	_, err1 := strconv.Atoi(major)
	_, err2 := strconv.Atoi(minor)
	return err1 == nil && err2 == nil
}

// compareVersions compares API versions "1.41" and "1.50" numerically.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// statusOf is the HTTP status Docker's engine answers an error of this
// category with.
func statusOf(err error) int {
	if errors.Is(err, errNotImplemented) {
		return http.StatusNotImplemented
	}
	switch errdefs.Category(err) {
	case errdefs.ErrInvalid:
		return http.StatusBadRequest
	case errdefs.ErrNotFound:
		return http.StatusNotFound
	case errdefs.ErrAlreadyExists, errdefs.ErrConflict:
		return http.StatusConflict
	case errdefs.ErrUnavailable, errdefs.ErrFailedPrecond:
		return http.StatusServiceUnavailable
	case errdefs.ErrPermissionDenied:
		return http.StatusForbidden
	case errdefs.ErrUnauthenticated:
		return http.StatusUnauthorized
	}
	if errorsIsContext(err) {
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}

var errNotImplemented = errors.New("not implemented")

func errorsIsContext(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// message is what a client shows of err: Shoal's words, without the
// category's suffix, and with docker's commands where Shoal's cluster
// commands are named (the node's own, such as `shoal rm`, stay).
func message(err error) string {
	msg := err.Error()
	if cat := errdefs.Category(err); cat != nil {
		msg = strings.TrimSuffix(msg, ": "+cat.Error())
	}
	msg = strings.TrimSuffix(msg, ": "+errNotImplemented.Error())
	for _, cmd := range dockerCommands {
		msg = strings.ReplaceAll(msg, "`shoal "+cmd+" ", "`docker "+cmd+" ")
	}
	return msg
}

// dockerCommands are Shoal's commands the docker CLI has too, by the same
// name and flags: an error naming one names docker's.
var dockerCommands = []string{"swarm", "service", "node", "network", "secret", "config", "stack"}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	err = errgrpc.FromGRPC(err)
	code := statusOf(err)
	if code >= 500 && code != http.StatusNotImplemented && code != http.StatusServiceUnavailable {
		s.log.Warn("docker api call failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	}
	writeJSON(w, code, common.ErrorResponse{Message: message(err)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func ok(w http.ResponseWriter, v any) error {
	writeJSON(w, http.StatusOK, v)
	return nil
}

// maxBody bounds a request's JSON body (a service spec, a secret of at
// most 500 KiB in base64).
const maxBody = 4 << 20

// decode reads a JSON request body into v. Malformed JSON and a value
// of the wrong type are a 400 naming where; unknown fields are ignored,
// as Docker's engine ignores them.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("read the request body: %w", err)
	}
	if len(body) > maxBody {
		return fmt.Errorf("the request body is over %d MiB: %w", maxBody>>20, errdefs.ErrInvalid)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return fmt.Errorf("the request body is empty; it must be a JSON object: %w", errdefs.ErrInvalid)
	}
	if err := json.Unmarshal(body, v); err != nil {
		switch e := err.(type) {
		case *json.UnmarshalTypeError:
			return fmt.Errorf("invalid JSON: %s must be %s, not %s: %w", e.Field, e.Type, e.Value, errdefs.ErrInvalid)
		case *json.SyntaxError:
			return fmt.Errorf("invalid JSON at byte %d: %v: %w", e.Offset, err, errdefs.ErrInvalid)
		}
		return fmt.Errorf("invalid JSON: %v: %w", err, errdefs.ErrInvalid)
	}
	return nil
}

// boolQuery is a query parameter Docker reads as a boolean: "1", "true"
// (any case) are true; absent, "", "0", "false" false.
func boolQuery(r *http.Request, key string) bool {
	v := strings.ToLower(r.URL.Query().Get(key))
	return v == "1" || v == "true"
}

// versionQuery is the ?version= of an update, which must be given.
func versionQuery(r *http.Request) (uint64, error) {
	v := r.URL.Query().Get("version")
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid version %q: give the object's Version.Index from its inspect: %w", v, errdefs.ErrInvalid)
	}
	return n, nil
}

// errFrom is err with its category, once it came back over gRPC.
func errFrom(err error) error { return errgrpc.FromGRPC(err) }

func invalidParam(key, value, want string) error {
	return fmt.Errorf("invalid %s=%q: want %s: %w", key, value, want, errdefs.ErrInvalid)
}
