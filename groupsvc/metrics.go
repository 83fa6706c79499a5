package groupsvc

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics of the group service and router, on the default registry.
var (
	viewEpoch = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "memstore_view_epoch", Help: "Epoch of the current view."})
	viewLeader = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "memstore_view_leader", Help: "Id of the current leader (0: none)."})
	viewChanges = promauto.NewCounter(prometheus.CounterOpts{
		Name: "memstore_view_changes_total", Help: "Views stored: elections and membership changes."})
	nodeLag = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "memstore_node_lag_entries", Help: "Entries the node has yet to apply behind the leader's commit."}, []string{"node"})
	nodeUp = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "memstore_node_up", Help: "1 if the group service hears the node's heartbeats."}, []string{"node"})
	requestSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "memstore_request_seconds", Help: "Time the router took to answer a request, by request and answer code (ok or the error code).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"op", "code"})
	requestsRefused = promauto.NewCounter(prometheus.CounterOpts{
		Name: "memstore_requests_refused_total", Help: "Requests refused at once because their writer had too many in flight."})
)
