// Package bus owns memstore's wire: subject names, the wire types of the
// public API (ms.api.*, ms.in.*, ms.ev.*) and of the internal subjects
// (ms.sys.*) with their JSON codec (get and history replies read directly,
// through internal/versionjson), the embedded NATS server (JetStream on)
// of the middleware, and a thin connection wrapper.
//
// Every reply is {"ok":true,...} or {"ok":false,"error":{"code","message"}};
// the codes are the Code* constants.
package bus
