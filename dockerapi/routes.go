package dockerapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func (s *Server) routes() {
	s.handle("GET /_ping", s.ping)
	s.handle("HEAD /_ping", s.ping)
	s.handle("GET /version", s.version)
	s.handle("GET /info", s.info)
	s.handle("GET /events", s.events)

	s.handle("GET /swarm", s.swarmInspect)
	s.handle("POST /swarm/init", s.swarmInit)
	s.handle("POST /swarm/join", s.swarmJoin)
	s.handle("POST /swarm/leave", s.swarmLeave)
	s.handle("POST /swarm/update", s.swarmUpdate)
	s.handle("GET /swarm/unlockkey", s.swarmUnlockKey)
	s.handle("POST /swarm/unlock", s.swarmUnlock)

	s.handle("GET /nodes", s.nodeList)
	s.handle("GET /nodes/{id}", s.nodeInspect)
	s.handle("POST /nodes/{id}/update", s.nodeUpdate)
	s.handle("DELETE /nodes/{id}", s.nodeRemove)

	s.handle("GET /services", s.serviceList)
	s.handle("POST /services/create", s.serviceCreate)
	s.handle("GET /services/{id}", s.serviceInspect)
	s.handle("POST /services/{id}/update", s.serviceUpdate)
	s.handle("DELETE /services/{id}", s.serviceRemove)
	s.handle("GET /services/{id}/logs", s.serviceLogs)

	s.handle("GET /tasks", s.taskList)
	s.handle("GET /tasks/{id}", s.taskInspect)
	s.handle("GET /tasks/{id}/logs", s.taskLogs)

	s.handle("GET /networks", s.networkList)
	s.handle("GET /networks/{id}", s.networkInspect)
	s.handle("POST /networks/create", s.networkCreate)
	s.handle("DELETE /networks/{id}", s.networkRemove)
	s.handle("POST /networks/{id}/connect", s.networkConnect)
	s.handle("POST /networks/{id}/disconnect", s.networkConnect)

	s.handle("GET /secrets", s.secretList)
	s.handle("POST /secrets/create", s.secretCreate)
	s.handle("GET /secrets/{id}", s.secretInspect)
	s.handle("POST /secrets/{id}/update", s.secretUpdate)
	s.handle("DELETE /secrets/{id}", s.secretRemove)

	s.handle("GET /configs", s.configList)
	s.handle("POST /configs/create", s.configCreate)
	s.handle("GET /configs/{id}", s.configInspect)
	s.handle("POST /configs/{id}/update", s.configUpdate)
	s.handle("DELETE /configs/{id}", s.configRemove)

	s.handle("GET /volumes", s.volumeList)
	s.handle("POST /volumes/create", s.volumeCreate)
	s.handle("GET /volumes/{name}", s.volumeInspect)
	s.handle("DELETE /volumes/{name}", s.volumeRemove)

	s.handle("GET /containers/json", s.containerList)
	s.handle("GET /containers/{id}/json", s.containerInspect)
	s.handle("GET /containers/{id}/logs", s.containerLogs)

	s.handle("GET /images/json", s.imageList)
	s.handle("POST /images/create", s.imageCreate)
	s.handle("POST /images/load", s.imageLoad)
	// Image names have slashes: /distribution/{name...}/json.
	s.handle("GET /distribution/", func(w http.ResponseWriter, r *http.Request) error {
		name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/distribution/"), "/json")
		if !ok || name == "" {
			return s.notFound(w, r)
		}
		return s.distributionInspect(w, r, name)
	})
	s.handle("/", s.notFound)
}

// unimplemented are the Docker API's endpoints Shoal does not serve, by
// path prefix, with what to use instead.
var unimplemented = []struct{ prefix, instead string }{
	{"/containers/create", "Shoal runs containers as services: `docker service create`, or on one node `shoal run`"},
	{"/containers/prune", "stopped task containers are removed by Shoal as their history ages out (docker swarm update --task-history-limit)"},
	{"/containers/", "Shoal's Docker API lists and inspects containers and reads their logs; to change one, change its service (`docker service update`), or on its node use `shoal stop`, `shoal kill`, `shoal rm`"},
	{"/exec/", "Shoal does not exec into containers through the Docker API"},
	{"/build", "Shoal does not build images: build them elsewhere, push them to a registry (or `docker image load` them)"},
	{"/session", "Shoal does not build images"},
	{"/grpc", "Shoal does not build images"},
	{"/commit", "Shoal does not commit containers to images"},
	{"/plugins", "Shoal has no plugins: its network (overlay), volume (local) and log (json-file) drivers are built in"},
	{"/images/", "Shoal's Docker API lists, pulls and loads images; for the rest use `shoal image` on the node"},
	{"/auth", "give a service its registry credentials with `docker service create --with-registry-auth`"},
	{"/system/df", "use `shoal image ls` and `shoal volume ls`"},
	{"/networks/prune", "remove networks with `docker network rm`"},
	{"/volumes/prune", "use `shoal volume prune` on the node"},
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) error {
	for _, u := range unimplemented {
		if strings.HasPrefix(r.URL.Path, u.prefix) {
			return fmt.Errorf("%s %s is not implemented by Shoal: %s: %w", r.Method, r.URL.Path, u.instead, errNotImplemented)
		}
	}
	return fmt.Errorf("page not found: %w", errdefs.ErrNotFound)
}
