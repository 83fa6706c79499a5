package replica

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/internal/natstest"
)

// TestBatchReplyKeepsOrder: the replies to a forwarded batch go back in
// one message, in the batch's order, whatever order they were answered in.
func TestBatchReplyKeepsOrder(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	_, err := nc.Subscribe("test.batch", func(m *nats.Msg) {
		b := newBatchReply(m, 3)
		for _, i := range []int{2, 0, 1} {
			b.answer(i)([]byte{byte('a' + i)})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := nc.Request("test.batch", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := bus.DecodeReplies(rep.Data, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"a", "b", "c"} {
		if string(reps[i]) != want {
			t.Errorf("reply %d is %q, want %q", i, reps[i], want)
		}
	}
}
