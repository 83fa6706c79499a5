package bus

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"
)

// Connect opens a NATS connection for a memstore process. It keeps trying
// when the server is not up yet (processes may start in any order), it
// notices a dead connection within seconds and reconnects forever, and it
// does not buffer publishes while disconnected: a message
// is sent now or fails now, so no replication message is replayed late as
// if fresh (epochs would refuse it anyway). Extra options (a CA to trust,
// an in-process server) come after.
func Connect(url, name string, log logrus.FieldLogger, extra ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(-1),
		KeepAlive(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close
				log.WithError(err).Warn("disconnected from nats")
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			// A slow consumer: a subscription's messages were dropped.
			e := log.WithError(err)
			if sub != nil {
				e = e.WithField("subject", sub.Subject)
			}
			e.Warn("nats")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.WithField("url", nc.ConnectedUrl()).Info("reconnected to nats")
		}),
	}, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", url, err)
	}
	return nc, nil
}

// KeepAlive makes a connection notice a dead link within about 6 s: a cut
// network often leaves the socket open, so it pings every 2 s and
// reconnects after 2 unanswered pings, not after the default 2 minutes
// (found by the compose test's partition of host B).
func KeepAlive() nats.Option {
	return func(o *nats.Options) error {
		o.PingInterval = 2 * time.Second
		o.MaxPingsOut = 2
		return nil
	}
}
