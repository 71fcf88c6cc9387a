package netoverlay

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	endpointsDesc = prometheus.NewDesc("shoal_node_overlay_endpoints",
		"This node's endpoints on overlay networks, by network ID and state: ready (in the load balancers and DNS) or draining.",
		[]string{"network_id", "state"}, nil)
	remoteEndpointsDesc = prometheus.NewDesc("shoal_node_overlay_remote_endpoints",
		"Other nodes' endpoints this node knows of from gossip, by network ID.", []string{"network_id"}, nil)
)

// Describe is prometheus.Collector's: the overlay's endpoint gauges.
func (o *OnDemand) Describe(ch chan<- *prometheus.Desc) {
	ch <- endpointsDesc
	ch <- remoteEndpointsDesc
}

// Collect counts the overlay's endpoints; a node with no overlay yet has
// none.
func (o *OnDemand) Collect(ch chan<- prometheus.Metric) {
	o.mu.Lock()
	n := o.node
	o.mu.Unlock()
	if n == nil {
		return
	}
	type key struct{ network, state string }
	local, remote := map[key]int{}, map[string]int{}
	n.mu.Lock()
	for _, e := range n.localLocked().GetEndpoints() {
		if e.GetTaskId() == "" {
			continue // the node's own ingress address, not a task's
		}
		state := "ready"
		if e.GetDraining() {
			state = "draining"
		}
		local[key{e.GetNetworkId(), state}]++
	}
	for _, eps := range n.remote {
		for _, e := range eps.GetEndpoints() {
			if e.GetTaskId() != "" {
				remote[e.GetNetworkId()]++
			}
		}
	}
	n.mu.Unlock()
	for k, v := range local {
		ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, float64(v), k.network, k.state)
	}
	for network, v := range remote {
		ch <- prometheus.MustNewConstMetric(remoteEndpointsDesc, prometheus.GaugeValue, float64(v), network)
	}
}
