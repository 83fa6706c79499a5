package bus

import (
	"reflect"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bytes to the strict decoder of every
// request type: it never panics, and what it accepts encodes and decodes
// back to the same request.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"path":"plant1/line3/temp","value":21.5}`,
		`{"values":[{"path":"a","value":1,"event_ts":"2026-01-02T03:04:05Z"}],"source":"s","source_seq":3}`,
		`{"path":"a","consistency":"stale","min_seq":7}`,
		`{"path":"a","since":"2026-01-02T03:04:05Z","until":"2026-01-03T00:00:00Z","after_seq":5,"limit":10}`,
		`{"path":"a","at":"2026-01-02T03:04:05Z","limit":-1}`,
		`{"path":"a","every":"1m","time":"event"}`,
		`{"path":"a","unknown":1}`, `{"path":"a"} {}`, `[1,2]`, `{"path":1}`, "\x00", ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newReq := range []func() any{
			func() any { return &PutRequest{} }, func() any { return &GetRequest{} },
			func() any { return &HistoryRequest{} }, func() any { return &LsRequest{} },
			func() any { return &TreeRequest{} }, func() any { return &AggRequest{} },
		} {
			req := newReq()
			if DecodeRequest(data, req) != nil {
				continue
			}
			again := newReq()
			if e := DecodeRequest(Encode(req), again); e != nil {
				t.Fatalf("%T %q decoded, but its encoding does not: %v", req, data, e)
			}
			if !reflect.DeepEqual(normal(req), normal(again)) {
				t.Fatalf("%T %q: %+v became %+v", req, data, req, again)
			}
		}
	})
}

// normal re-encodes a request, so raw values compare by content.
func normal(v any) string { return string(Encode(v)) }

// FuzzDecodeGetRequest: the fast get decoder agrees with the strict one on
// every input, in what it accepts and what it reads.
func FuzzDecodeGetRequest(f *testing.F) {
	for _, seed := range []string{
		`{"path":"plant1/line3/temp"}`, `{"path":"a/b","consistency":"stale"}`, `{"path":"a","consistency":"linearizable"}`,
		`{"path":"a","consistency":"other"}`, `{"path":"a\"b"}`, `{"path":"a","consistency":"stale","min_seq":3}`,
		`{"path":"ü"}`, `{"path":""}`, `{"path":"a"} `, `{"path":"a","consistency":"stale"}}`, `{"path":"a","path":"b"}`,
		`{"path":"a.b"}`, `{"path":"a\u0041"}`, `{"Path":"a"}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := DecodeGetRequest(data)
		var want GetRequest
		wantErr := DecodeRequest(data, &want)
		if (gotErr == nil) != (wantErr == nil) || (wantErr == nil && got != want) {
			t.Fatalf("%q: fast %+v (%v), strict %+v (%v)", data, got, gotErr, want, wantErr)
		}
	})
}

// FuzzDecodePutRequest: the fast put decoder agrees with the strict one on
// every input, in what it accepts and what it reads.
func FuzzDecodePutRequest(f *testing.F) {
	for _, seed := range []string{
		`{"path":"plant1/line3/temp","value":21.5}`, `{"path":"a","value":{"x":[1,"}"]}}`, `{"path":"a","value":null}`,
		`{"path":"a","value":1 }`, `{"path":"a","value": 1}`, `{"path":"a","value":1,"source":"s","source_seq":1}`,
		`{"path":"a","value":1}}`, `{"path":"a","value":"x","event_ts":"2026-01-02T03:04:05Z"}`, `{"path":"a","value":}`,
		`{"path":"a\"b","value":1}`, `{"path":"a","value":"\xff"}`, `{"path":"a","value":1,"path":"b"}`, `{"path":"","value":1}`,
		`{"values":[{"path":"a","value":1},{"path":"b/c","value":{"x":["]}",{"y":"\"}"}]}}]}`, `{"values":[{"path":"a","value":"x\\"}]}`,
		`{"values":[{"path":"a","value":1 },{"path":"b","value":2}]}`, `{"values":[{"path":"a","value":1}]}}`, `{"values":[]}`,
		`{"values":[{"path":"a","value":1},]}`, `{"values":[{"path":"a","value":[1,2]],{"path":"b","value":2}]}`, `{"values":[{"path":"a","value":tru}]}`,
		`{"values":[{"path":"a","value":1}],"source":"s","source_seq":2}`, `{"values":[{"path":"a","value":1,"event_ts":"2026-01-02T03:04:05Z"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := DecodePutRequest(data)
		var want PutRequest
		wantErr := DecodeRequest(data, &want)
		if (gotErr == nil) != (wantErr == nil) || (wantErr == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("%q: fast %+v (%v), strict %+v (%v)", data, got, gotErr, want, wantErr)
		}
	})
}
