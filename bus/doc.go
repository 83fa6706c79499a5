// Package bus owns memstore's wire: subject names, the wire types of the
// public API (ms.api.*, ms.in.*, ms.ev.*) and of the internal subjects
// (ms.sys.*) with their JSON codec (and the direct reader of a version as
// json.Marshal spells it, which the nodes store and send: ScanVersion),
// the embedded NATS server (JetStream on) of the middleware, and a thin
// connection wrapper.
//
// Every reply is {"ok":true,...} or {"ok":false,"error":{"code","message"}};
// the codes are the Code* constants.
package bus
