package groupsvc

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"memstore/bus"
)

// FuzzIngest feeds arbitrary subjects and payloads to the router's ms.in
// mapping: it never panics, and it always makes a put request whose value
// is valid JSON (a payload that is not JSON is stored as a string) and
// whose path is the subject's tokens.
func FuzzIngest(f *testing.F) {
	for _, seed := range []struct{ tokens, payload string }{
		{"plant1.line3.temp", "21.5"}, {"a", `{"x":[1,2]}`}, {"a.b", "hello world"},
		{"a..b", "1"}, {"", "1"}, {"a.b", "\xff\xfe"}, {"a.b", ""}, {"x", `"unterminated`},
	} {
		f.Add(seed.tokens, []byte(seed.payload))
	}
	r := &Router{sub: bus.NewSubjects("ms")}
	f.Fuzz(func(t *testing.T, tokens string, payload []byte) {
		op, data, e := r.route(&nats.Msg{Subject: "ms.in." + tokens, Data: payload})
		if tokens == "" {
			if e == nil && op == bus.OpPut {
				t.Fatalf("ms.in. with no path became a put")
			}
			return
		}
		if e != nil || op != bus.OpPut {
			t.Fatalf("ms.in.%s: op %q, %v", tokens, op, e)
		}
		var req bus.PutRequest
		if e := bus.DecodeRequest(data, &req); e != nil {
			t.Fatalf("ms.in.%s made a request that does not decode: %v", tokens, e)
		}
		// A path that is not UTF-8 comes out of JSON changed; the node
		// refuses it as a bad path all the same.
		if !json.Valid(req.Value) || utf8.ValidString(tokens) && req.Path != bus.TokensToPath(tokens) {
			t.Fatalf("ms.in.%s %q → %+v", tokens, payload, req)
		}
	})
}
