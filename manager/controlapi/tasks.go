package controlapi

import (
	"context"
	"sort"

	"github.com/shoal-run/shoal/manager/orchestrator"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// ListTasks returns tasks, filtered by service and node (ID, name or
// prefix) and, with up_to_date, to those made from their service's
// current spec, ordered by service, slot and age.
func (s *Server) ListTasks(ctx context.Context, req *shoalv1.ListTasksRequest) (*shoalv1.ListTasksResponse, error) {
	f, err := parseFilters(req.GetFilters(), taskFilters...)
	if err != nil {
		return nil, err
	}
	nodeRef := selfRef(ctx, req.GetNodeId())
	var (
		tasks    []*shoalv1.Task
		services map[string]*shoalv1.Service
		hosts    map[string]string
	)
	s.Store.View(func(r store.ReadTx) {
		services = map[string]*shoalv1.Service{}
		switch {
		case req.GetServiceId() != "":
			var svc *shoalv1.Service
			if svc, err = store.Find[*shoalv1.Service](r, store.TableService, req.GetServiceId(), "service"); err == nil {
				tasks = store.ListBy[*shoalv1.Task](r, store.TableTask, "service", svc.GetId())
				services[svc.GetId()] = svc
			}
		case req.GetNodeId() != "":
			var n *shoalv1.Node
			if n, err = store.Find[*shoalv1.Node](r, store.TableNode, nodeRef, "node"); err == nil {
				tasks = store.ListBy[*shoalv1.Task](r, store.TableTask, "node", n.GetId())
			}
		default:
			tasks = store.List[*shoalv1.Task](r, store.TableTask)
		}
		if _, ok := f["node"]; ok {
			hosts = map[string]string{}
			for _, n := range store.List[*shoalv1.Node](r, store.TableNode) {
				hosts[n.GetId()] = n.GetDescription().GetHostname()
			}
		}
		if req.GetUpToDate() && req.GetServiceId() == "" {
			for _, svc := range store.List[*shoalv1.Service](r, store.TableService) {
				services[svc.GetId()] = svc
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if req.GetServiceId() != "" && req.GetNodeId() != "" {
		var n *shoalv1.Node
		s.Store.View(func(r store.ReadTx) { n, err = store.Find[*shoalv1.Node](r, store.TableNode, nodeRef, "node") })
		if err != nil {
			return nil, err
		}
		kept := tasks[:0]
		for _, t := range tasks {
			if t.GetNodeId() == n.GetId() {
				kept = append(kept, t)
			}
		}
		tasks = kept
	}
	if req.GetUpToDate() {
		kept := tasks[:0]
		for _, t := range tasks {
			if svc, ok := services[t.GetServiceId()]; ok && orchestrator.UpToDate(svc, t) {
				kept = append(kept, t)
			}
		}
		tasks = kept
	}
	tasks = keep(tasks, func(t *shoalv1.Task) bool { return f.task(t, func(id string) string { return hosts[id] }) })
	sort.Slice(tasks, func(i, j int) bool {
		a, b := tasks[i], tasks[j]
		if a.GetServiceName() != b.GetServiceName() {
			return a.GetServiceName() < b.GetServiceName()
		}
		if a.GetSlot() != b.GetSlot() {
			return a.GetSlot() < b.GetSlot()
		}
		// A global service's slot is its node; a replica's tasks are one
		// slot wherever they ran: newest first, as docker's service ps.
		if a.GetSlot() == 0 && a.GetNodeId() != b.GetNodeId() {
			return a.GetNodeId() < b.GetNodeId()
		}
		return a.GetMeta().GetCreatedAt().AsTime().After(b.GetMeta().GetCreatedAt().AsTime())
	})
	for i, t := range tasks {
		tasks[i] = redactTask(t)
	}
	return &shoalv1.ListTasksResponse{Tasks: tasks}, nil
}

// GetTask returns one task by ID or unique prefix.
func (s *Server) GetTask(ctx context.Context, req *shoalv1.GetTaskRequest) (*shoalv1.GetTaskResponse, error) {
	var (
		t   *shoalv1.Task
		err error
	)
	s.Store.View(func(r store.ReadTx) { t, err = store.Find[*shoalv1.Task](r, store.TableTask, req.GetTaskId(), "task") })
	if err != nil {
		return nil, err
	}
	return &shoalv1.GetTaskResponse{Task: redactTask(t)}, nil
}
