package replica

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/internal/natstest"
)

// TestBatchReplyKeepsOrder: the replies to a forwarded batch go back in
// one message, in the batch's order, whatever order they were answered
// in; a second answer to one request is ignored.
func TestBatchReplyKeepsOrder(t *testing.T) {
	got := batchReplies(t, 3, 1<<20, true, func(b *batchReply) {
		for _, i := range []int{2, 0, 2, 1} {
			b.answer(i)([]byte{byte('a' + i)})
		}
	})
	if strings.Join(got, ",") != "a,b,c" {
		t.Errorf("replies %q, want a,b,c", got)
	}
}

// TestBatchReplyTooLarge: replies of gets too large for one message go
// back with the largest left empty (the router asks for those alone),
// replies to puts never; a lone reply too large is refused as too_large.
func TestBatchReplyTooLarge(t *testing.T) {
	sizes := func(gets bool) string {
		got := batchReplies(t, 4, 600, gets, func(b *batchReply) {
			for i, n := range []int{300, 10, 500, 200} {
				b.answer(i)(bytes.Repeat([]byte{'x'}, n))
			}
		})
		var lens []int
		for _, r := range got {
			lens = append(lens, len(r))
		}
		return fmt.Sprint(lens)
	}
	if got := sizes(true); got != "[300 10 0 200]" {
		t.Errorf("reply sizes %v, want [300 10 0 200]: only the largest left out", got)
	}
	if got := sizes(false); got != "[300 10 500 200]" { // a put asked again could be written twice
		t.Errorf("replies to puts %v, want all of them, none left out", got)
	}
	got := batchReplies(t, 1, 600, true, func(b *batchReply) { b.answer(0)(bytes.Repeat([]byte{'x'}, 700)) })
	if !strings.Contains(got[0], `"code":"too_large"`) {
		t.Errorf("a lone reply too large: %.80s", got[0])
	}
}

// batchReplies answers a batch of n requests (gets or not) with fill,
// under a payload limit, and returns the replies the requester got.
func batchReplies(t *testing.T, n, limit int, gets bool, fill func(*batchReply)) []string {
	t.Helper()
	_, nc, log := natstest.Start(t)
	_, err := nc.Subscribe("test.batch", func(m *nats.Msg) { fill(newBatchReply(m, n, limit, gets, log)) })
	if err != nil {
		t.Fatal(err)
	}
	rep, err := nc.Request("test.batch", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := bus.DecodeReplies(rep.Data, n)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range reps {
		out = append(out, string(r))
	}
	return out
}
