package bus

import (
	"bytes"
	"testing"
)

func TestForwardedRoundTrip(t *testing.T) {
	in := []Forwarded{{User: "alice", Data: []byte(`{"path":"a/b","value":1}`)}, {User: "", Data: nil}, {User: "bob", Data: bytes.Repeat([]byte("x"), 300)}}
	out, err := DecodeForwarded(EncodeForwarded(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d requests back, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].User != in[i].User || !bytes.Equal(out[i].Data, in[i].Data) {
			t.Errorf("request %d: %q %q, want %q %q", i, out[i].User, out[i].Data, in[i].User, in[i].Data)
		}
	}
	reps := [][]byte{[]byte(`{"ok":true}`), {}, bytes.Repeat([]byte("y"), 200)}
	back, err := DecodeReplies(EncodeReplies(reps), len(reps))
	if err != nil {
		t.Fatal(err)
	}
	for i := range reps {
		if !bytes.Equal(back[i], reps[i]) {
			t.Errorf("reply %d: %q, want %q", i, back[i], reps[i])
		}
	}
}

func TestForwardedMalformed(t *testing.T) {
	two := EncodeForwarded([]Forwarded{{User: "u", Data: []byte("{}")}, {User: "v", Data: []byte("[]")}})
	for name, b := range map[string][]byte{
		"truncated":           two[:len(two)-1],
		"user without data":   EncodeReplies([][]byte{[]byte("u")}),
		"length past the end": {0x7f, 'a'},
		"bad uvarint":         {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		if _, err := DecodeForwarded(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := DecodeReplies(EncodeReplies([][]byte{{1}, {2}}), 3); err == nil {
		t.Error("2 replies to 3 requests decoded")
	}
}
