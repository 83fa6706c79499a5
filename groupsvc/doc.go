// Package groupsvc is the middleware's logic: the group service, which
// drives the election state machine (package election) with the view kept
// in a JetStream KV bucket and changed only by compare-and-set, and the
// router, which serves the public API (ms.api.<op>, ms.in.>; the member
// nodes serve ms.api.get.stale themselves) as a queue group and forwards
// each request to the current leader (stale reads on ms.api.get to any
// live member), puts and plain gets in batches per node (pipes), retrying
// across a leader change within the request's deadline.
//
// Seed names: node_status_check and group_update are the coordinator's
// Tick (see package election), listen_to_new_node its handling of a new
// node's heartbeats; listen_to_user is (*Router).serve, write_request and
// read_request are (*Router).forward for writes and reads (and, for
// ms.api.get.stale, the node's serveStaleGet).
package groupsvc
