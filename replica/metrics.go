package replica

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics of the nodes, on the default registry, labelled by node id
// (several nodes may run in one process).
var (
	commits = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "memstore_commits_total", Help: "Log entries committed and applied."}, []string{"node"})
	walBatch = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "memstore_wal_batch_entries", Help: "Entries written to the WAL with one fsync.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12)}, []string{"node"})
	walSync = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "memstore_wal_fsync_seconds", Help: "Time to write and fsync one WAL batch.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"node"})
	appliedSeq = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "memstore_applied_seq", Help: "Seq of the latest entry the node applied."}, []string{"node"})
	leadingGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "memstore_leader", Help: "1 while the node leads."}, []string{"node"})
	staleGets = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "memstore_stale_gets_total", Help: "Gets on ms.api.get.stale the node took (past the router)."}, []string{"node"})
)
