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
	got := batchReplies(t, 3, 1<<20, func(b *batchReply) {
		for _, i := range []int{2, 0, 2, 1} {
			b.answer(i)([]byte{byte('a' + i)})
		}
	})
	if strings.Join(got, ",") != "a,b,c" {
		t.Errorf("replies %q, want a,b,c", got)
	}
}

// TestBatchReplyTooLarge: replies too large for one message go back with
// the largest left empty (the router asks for those alone).
func TestBatchReplyTooLarge(t *testing.T) {
	sizes := []int{300, 10, 500, 200}
	got := batchReplies(t, 4, 600, func(b *batchReply) {
		for i, n := range sizes {
			b.answer(i)(bytes.Repeat([]byte{'x'}, n))
		}
	})
	var lens []int
	for _, r := range got {
		lens = append(lens, len(r))
	}
	if fmt.Sprint(lens) != "[300 10 0 200]" {
		t.Errorf("reply sizes %v, want [300 10 0 200]: only the largest left out", lens)
	}
}

// batchReplies answers a batch of n requests with fill, under a payload
// limit, and returns the replies the requester got.
func batchReplies(t *testing.T, n, limit int, fill func(*batchReply)) []string {
	t.Helper()
	_, nc, _ := natstest.Start(t)
	_, err := nc.Subscribe("test.batch", func(m *nats.Msg) { fill(newBatchReply(m, n, limit)) })
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
