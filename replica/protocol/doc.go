// Package protocol is memstore's replication state machine: one replica's
// side of the protocol of DESIGN.md ("Replication protocol", rules 3 to 7),
// as a pure library in the style of etcd-io/raft. It starts no goroutines,
// reads no clock, does no I/O and imports no NATS: messages, ticks and "disk
// write done" events go in; a Ready batch of disk writes, messages, entries
// to apply and client answers comes out.
//
// # The driver
//
// One goroutine owns a Node and loops:
//
//  1. Feed it input: Step(msg) for each message received, Tick() at a fixed
//     interval, Propose(id, data) for each client write, Read(id, check) for
//     each linearizable read, DiskDone(id) when storage reports a write durable,
//     SnapshotDone(point, err) when a snapshot fetch ends, Compact(seq)
//     after the state machine checkpointed, AskCommit(seq) when a reader
//     waits for seq on a follower (read-your-writes).
//  2. Call Ready() and handle it in the order its doc gives: issue the Write
//     to storage (which applies writes in order and fsyncs, then reports
//     DiskDone), send the Messages, apply the Apply entries, answer Replies
//     and Reads, start the Snapshot fetch. Then go back to 1.
//
// Writes may be in flight while the loop goes on: acks to the leader and
// promises to the coordinator are only produced by DiskDone, so nothing is
// claimed durable before it is.
//
// # The rules
//
//   - Prepare(e): the node records, durably, that it refuses every message of
//     an epoch below e, then answers with its durable log end
//     (last_epoch, last_seq).
//   - A node follows the leader of the newest view (or of the newest epoch it
//     sees an append from, at or above its promise). A leader starts its
//     epoch with a no-op entry of that epoch.
//   - The leader assigns seqs and cuts pending proposals into batches in
//     Ready: one append, one write, one multicast per batch, up to
//     MaxInflight batches uncommitted at once.
//   - A follower accepts an append only for its current epoch and only if it
//     holds (prev_epoch, prev_seq) (or prev is at or below its commit); it
//     drops a conflicting uncommitted suffix; it acks the highest seq that is
//     both durable and known to match the leader's log.
//   - An entry is committed when a majority of the view's members hold it
//     durably and it is of the leader's own epoch; earlier entries commit
//     with it. Entries are applied once committed and durable locally.
//   - A node that is behind asks the leader for the entries after its log end
//     (or after its highest matching seq); the leader answers one chunk per
//     request (the node pulls the next one: flow control), or "snapshot
//     needed" when the entries are compacted away (ignored by a node whose
//     log has come to match the leader's past that point since it asked).
//   - A follower holding a reader that waits for a seq above the commit it
//     knows (AskCommit) sends the leader such a request at once: the answer
//     carries the commit. One is out at a time, at most 64 a tick.
//   - Linearizable reads: the leader records its commit seq as the read
//     index once its epoch's no-op is committed, confirms with a read-index
//     round that a majority still follows it in its epoch (one round serves
//     every read registered before it started), or with the acks of a read
//     check the router multicast as the read left (the round then runs
//     while the read travels; a check late by 2 ticks falls back to a
//     round), and answers once it has applied up to the index.
//   - A leader that has not heard from a majority of the members within
//     QuorumTicks refuses new writes (ErrNoQuorum: nothing written) instead
//     of queueing them where they would hang.
//   - After a restart a node never leads an epoch it had already promised:
//     it may have lost unsynced entries it had sent.
//
// Invariants (checked by the simulator in ./simulation): at most one leader
// per epoch; two logs holding (epoch, seq) are identical up to it; a
// committed entry is never lost or changed; every node applies the same
// entries in the same order; a linearizable read reflects every write
// completed before it.
//
// # Seed names
//
//	listen_to_leader             (*Node).handleAppend
//	connect_with_followers       (*Node).handleCatchUp (the leader's side of catch-up)
//	initiate_multicast           (*Node).appendBatch
//	get_master_copy_from_leader  (*Node).sendCatchUp, then a snapshot via Ready.Snapshot
//	listen_new_nodes_as_leader   (*Node).handleCatchUp answers nodes outside the view too
//	initiate_leader_to_new_node  (*Node).handleCatchUp / MsgSnapshotNeeded
//	write_request (leader side)  (*Node).Propose
//	read_request (leader side)   (*Node).Read
package protocol
