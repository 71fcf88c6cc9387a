package dockerapi

import (
	"net/http"

	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-run/shoal/dockerapi/convert"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func (s *Server) serviceList(w http.ResponseWriter, r *http.Request) error {
	fs, err := filters(r)
	if err != nil {
		return err
	}
	resp, err := s.cfg.Control.ListServices(r.Context(), &shoalv1.ListServicesRequest{Filters: fs})
	if err != nil {
		return err
	}
	var counts map[string]*swarm.ServiceStatus
	if boolQuery(r, "status") {
		if counts, err = s.serviceStatus(r, resp.GetServices()); err != nil {
			return err
		}
	}
	out := []swarm.Service{}
	for _, svc := range resp.GetServices() {
		out = append(out, convert.Service(svc, counts[svc.GetId()]))
	}
	return ok(w, out)
}

// serviceStatus counts each service's tasks as Docker's service ls
// shows them: running tasks of the current spec's run over the desired.
func (s *Server) serviceStatus(r *http.Request, svcs []*shoalv1.Service) (map[string]*swarm.ServiceStatus, error) {
	tasks, err := s.cfg.Control.ListTasks(r.Context(), &shoalv1.ListTasksRequest{})
	if err != nil {
		return nil, err
	}
	out := map[string]*swarm.ServiceStatus{}
	byID := map[string]*shoalv1.Service{}
	for _, svc := range svcs {
		out[svc.GetId()] = &swarm.ServiceStatus{}
		byID[svc.GetId()] = svc
	}
	nodesWanted := map[string]map[string]bool{}
	for _, t := range tasks.GetTasks() {
		st, svc := out[t.GetServiceId()], byID[t.GetServiceId()]
		if st == nil {
			continue
		}
		job := svc.GetSpec().GetReplicatedJob() != nil || svc.GetSpec().GetGlobalJob() != nil
		if job && t.GetJobIteration() != svc.GetJobStatus().GetIteration() {
			continue
		}
		if t.GetStatus().GetState() == shoalv1.TaskState_TASK_STATE_RUNNING && t.GetDesiredState() <= shoalv1.TaskState_TASK_STATE_COMPLETE {
			st.RunningTasks++
		}
		if t.GetStatus().GetState() == shoalv1.TaskState_TASK_STATE_COMPLETE {
			st.CompletedTasks++
		}
		if d := t.GetDesiredState(); d == shoalv1.TaskState_TASK_STATE_RUNNING || job && d == shoalv1.TaskState_TASK_STATE_COMPLETE {
			if nodesWanted[t.GetServiceId()] == nil {
				nodesWanted[t.GetServiceId()] = map[string]bool{}
			}
			nodesWanted[t.GetServiceId()][t.GetNodeId()] = true
		}
	}
	for id, svc := range byID {
		st := out[id]
		switch m := svc.GetSpec().GetMode().(type) {
		case *shoalv1.ServiceSpec_Replicated:
			st.DesiredTasks = uint64(m.Replicated.GetReplicas())
		case *shoalv1.ServiceSpec_ReplicatedJob:
			left := uint64(max(m.ReplicatedJob.GetTotalCompletions(), 0)) - min(st.CompletedTasks, uint64(max(m.ReplicatedJob.GetTotalCompletions(), 0)))
			st.DesiredTasks = min(left, uint64(max(m.ReplicatedJob.GetMaxConcurrent(), 0)))
		default:
			st.DesiredTasks = uint64(len(nodesWanted[id]))
		}
	}
	return out, nil
}

func (s *Server) serviceCreate(w http.ResponseWriter, r *http.Request) error {
	var in swarm.ServiceSpec
	if err := decode(r, &in); err != nil {
		return err
	}
	spec, err := convert.ServiceSpec(in, r.Header.Get(registry.AuthHeader))
	if err != nil {
		return err
	}
	resp, err := s.cfg.Control.CreateService(r.Context(), &shoalv1.CreateServiceRequest{Spec: spec})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, swarm.ServiceCreateResponse{ID: resp.GetService().GetId(), Warnings: []string{}})
	return nil
}

func (s *Server) serviceInspect(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.cfg.Control.GetService(r.Context(), &shoalv1.GetServiceRequest{ServiceId: r.PathValue("id")})
	if err != nil {
		return err
	}
	out := convert.Service(resp.GetService(), nil)
	if boolQuery(r, "insertDefaults") {
		convert.Defaults(&out.Spec)
		if out.PreviousSpec != nil {
			convert.Defaults(out.PreviousSpec)
		}
	}
	return ok(w, out)
}

func (s *Server) serviceUpdate(w http.ResponseWriter, r *http.Request) error {
	version, err := versionQuery(r)
	if err != nil {
		return err
	}
	var in swarm.ServiceSpec
	if err := decode(r, &in); err != nil {
		return err
	}
	req := &shoalv1.UpdateServiceRequest{ServiceId: r.PathValue("id"), Version: version}
	switch rb := r.URL.Query().Get("rollback"); rb {
	case "previous":
		req.Rollback = true
	case "":
		// The spec's registry credentials: the header's, else (whatever
		// registryAuthFrom says) those the service has, which Shoal keeps.
		if req.Spec, err = convert.ServiceSpec(in, r.Header.Get(registry.AuthHeader)); err != nil {
			return err
		}
	default:
		return invalidParam("rollback", rb, "previous")
	}
	if _, err := s.cfg.Control.UpdateService(r.Context(), req); err != nil {
		return outOfSequence(err)
	}
	return ok(w, swarm.ServiceUpdateResponse{Warnings: []string{}})
}

func (s *Server) serviceRemove(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.cfg.Control.RemoveService(r.Context(), &shoalv1.RemoveServiceRequest{ServiceId: r.PathValue("id")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) taskList(w http.ResponseWriter, r *http.Request) error {
	fs, err := filters(r)
	if err != nil {
		return err
	}
	fs, services := take(fs, "service")
	fs, upToDate := take(fs, "_up-to-date")
	req := &shoalv1.ListTasksRequest{Filters: fs, UpToDate: len(upToDate) > 0}
	var tasks []*shoalv1.Task
	if len(services) == 0 {
		services = []string{""}
	}
	seen := map[string]bool{}
	for _, svc := range services {
		req.ServiceId = svc
		resp, err := s.cfg.Control.ListTasks(r.Context(), req)
		if err != nil {
			return err
		}
		for _, t := range resp.GetTasks() {
			if !seen[t.GetId()] {
				seen[t.GetId()] = true
				tasks = append(tasks, t)
			}
		}
	}
	out := []swarm.Task{}
	for _, t := range tasks {
		out = append(out, convert.Task(t, ""))
	}
	return ok(w, out)
}

func (s *Server) taskInspect(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.cfg.Control.GetTask(r.Context(), &shoalv1.GetTaskRequest{TaskId: r.PathValue("id")})
	if err != nil {
		return err
	}
	return ok(w, convert.Task(resp.GetTask(), ""))
}
