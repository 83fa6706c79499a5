// Package election is the group service's state machine: failure detection
// from heartbeats, the two-phase election, and membership changes, as a pure
// library (no goroutines, no clock, no I/O; randomness only from
// Config.Seed). It implements rules 1 to 3 of DESIGN.md's "Replication
// protocol" with the replica side in package replica/protocol.
//
// # The driver
//
// One goroutine owns a Coordinator, created from the view the store (a
// JetStream KV bucket) holds and its revision, and loops:
//
//  1. Feed it input: Step(msg) for node heartbeats (MsgStatus), promises and
//     rejects; Tick() at a fixed interval; Stored(view, rev) whenever the
//     driver learns what the store holds (the answer to a CAS, won or lost,
//     a read after an error, a watch update).
//  2. Call Ready(): send the Messages; if CAS is set, write CAS.View only if
//     the stored revision is still CAS.Rev, then report the stored view with
//     Stored (always, whether the write won, lost or failed).
//
// # The rules
//
//   - A node not heard from for FailureTicks is down. The leader is down too
//     when it does not report leading the view's epoch within ElectionTicks.
//   - Election (two phases): prepare(e) to the members of the next view,
//     with e above every epoch seen; once a majority of the current members
//     and a majority of the next members have promised, choose the promiser
//     with the most up-to-date log (highest last epoch, then last seq; ties
//     to the lowest id) and compare-and-set the view at the revision the
//     attempt started from. A lost CAS (another coordinator won) adopts the
//     winner's view. Without a majority of the members alive no election
//     starts: writes answer unavailable rather than risk two leaders.
//   - Lost prepares are sent again every RetryTicks; duplicated and late
//     promises are ignored; an attempt that has not written a view after
//     ElectionTicks is given up and retried with a higher epoch.
//   - Membership changes are view changes through the same election, one
//     node at a time: a node that is not a member joins once its log is
//     within JoinLag of the leader's commit (it got the master copy first);
//     a member that asks to leave is removed.
//   - The epoch never goes back: it is above the stored view's, also after a
//     restart, and the CAS lets only one coordinator write each view.
//
// # Seed names
//
//	node_status_check    (*Coordinator).Tick and alive/leading
//	group_update         (*Coordinator).groupUpdate
//	listen_to_new_node   (*Coordinator).listenToNode
package election
