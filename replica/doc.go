// Package replica is a memstore node: one loop that drives the replication
// state machine (package protocol) with the WAL and state file (package
// storage), the folder tree (package tree) and NATS (package bus).
//
// The loop (node_start_up, then run) owns the protocol node and storage.
// Messages from ms.sys.all and ms.sys.to.<id>, requests forwarded by the
// router on ms.sys.fwd.<id>.<op> (in batches, answered with one message
// each), ticks and snapshot results come in on channels; after each input it handles the protocol's Ready: publish the
// messages, write and fsync the WAL (group commit: one write per batch),
// apply committed entries to the tree, answer clients. Snapshots are
// served on ms.sys.snap.<id> and fetched by a goroutine the loop owns.
// Beside the loop, writeLoop does the WAL's writes and fsyncs in order,
// and beatLoop sends the loop's last status again while one of its turns
// lasts (beat.go); the node owns both and stops them on Close.
//
// Seed names: node_start_up is Start, server_connect is (*Node).subscribe,
// read_from_file and write_to_file are the tree's Open and Apply;
// listen_to_leader, connect_with_followers, initiate_multicast,
// get_master_copy_from_leader, listen_new_nodes_as_leader and
// initiate_leader_to_new_node are the protocol's (see its doc), carried
// here by (*Node).process and the snapshot fetch.
package replica
