// Package client is the Go client of memstore's public wire API, used by
// users and by our tools (CLI, sensor, query): put, get, history, ls, tree,
// status and watch, over NATS. Errors the store answers are *bus.Error, so
// callers can match their code.
package client

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
)

// Options configures a Client.
type Options struct {
	// Prefix of the subjects. Default "ms".
	Prefix string
	// Timeout of a request without a context deadline. Default 5 s.
	Timeout time.Duration
	// User names the writer when the store runs without auth.
	User string
	// TLSCA is the CA certificate (PEM file) to trust when the server
	// requires TLS.
	TLSCA string
	// Name of the NATS connection.
	Name string
}

// Client talks to a memstore cluster.
type Client struct {
	nc   *nats.Conn
	own  bool // the client opened nc and closes it
	sub  bus.Subjects
	opts Options

	mu      sync.Mutex
	queued  []*call   // Puts waiting to be sent (puts.go)
	putting bool      // a put request of queued calls is out
	more    gathering // of the Puts' sender
	stale   *getLane  // stale Gets (gets.go)
	lin     *getLane  // linearizable Gets
}

// Dial connects to the NATS server at url. It reconnects forever and
// notices a dead link within seconds (bus.KeepAlive).
func Dial(url string, opts Options) (*Client, error) {
	if opts.Name == "" {
		opts.Name = "memstore-client"
	}
	nopts := []nats.Option{nats.Name(opts.Name), nats.MaxReconnects(-1), bus.KeepAlive()}
	if opts.TLSCA != "" {
		nopts = append(nopts, nats.RootCAs(opts.TLSCA))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return nil, fmt.Errorf("client: connect %s: %w", redacted(url), err)
	}
	c := New(nc, opts)
	c.own = true
	return c, nil
}

// New uses an open connection.
func New(nc *nats.Conn, opts Options) *Client {
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	sub := bus.NewSubjects(opts.Prefix)
	return &Client{nc: nc, sub: sub, opts: opts, more: newGathering(),
		stale: newGetLane(sub.StaleGet(), staleAsks, false), lin: newGetLane(sub.API(bus.OpGet), 1, true)}
}

// Close closes the connection if the client opened it.
func (c *Client) Close() {
	if c.own {
		c.nc.Close()
	}
}

// ErrTimeout means no answer came before the deadline: a write may or may
// not have happened.
var ErrTimeout = errors.New("client: no answer before the deadline")

// request sends req to ms.api.<op> and decodes the reply into rep, whose
// Result says ok or the store's error.
func (c *Client) request(ctx context.Context, op string, req any, rep interface{ Err() error }) error {
	return c.requestOn(ctx, c.sub.API(op), req, rep)
}

// bounded gives ctx the client's timeout if it has no deadline.
func (c *Client) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.Timeout)
}

// requestOn is request on any subject.
func (c *Client) requestOn(ctx context.Context, subject string, req any, rep interface{ Err() error }) error {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	m, err := c.nc.RequestMsgWithContext(ctx, c.message(ctx, subject, bus.Encode(req)))
	if err != nil {
		return requestError(subject, err)
	}
	if e := bus.Decode(m.Data, rep); e != nil {
		return e
	}
	return rep.Err()
}

// message is a request of data on subject, with the writer's name if
// set and how long the client waits for it if that ends before the
// router's own wait (ctx's deadline).
func (c *Client) message(ctx context.Context, subject string, data []byte) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Data = data
	if c.opts.User != "" {
		msg.Header.Set(bus.HeaderUser, c.opts.User)
	}
	if dl, ok := ctx.Deadline(); ok {
		if wait := time.Until(dl) * 9 / 10; wait < bus.RouterWait { // the router (or a node, for a stale get's min_seq) answers a little before the client gives up
			msg.Header.Set(bus.HeaderDeadline, strconv.FormatInt(wait.Milliseconds(), 10))
		}
	}
	return msg
}

// requestError is the error of a request to subject that got no reply.
func requestError(subject string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w (%s)", ErrTimeout, subject)
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w (%w)", bus.Errorf(bus.CodeUnavailable, "nothing of memstore is listening on %s", subject), err)
	}
	return fmt.Errorf("client: %s: %w", subject, err)
}

// PutBatch writes several values atomically, under one seq.
func (c *Client) PutBatch(ctx context.Context, values []bus.PathValue) (bus.PutReply, error) {
	var rep bus.PutReply
	err := c.request(ctx, bus.OpPut, bus.PutRequest{Values: values}, &rep)
	return rep, err
}

// Write sends a full put request: single or batch, with a (source,
// sequence) key if set, so it can be resent safely.
func (c *Client) Write(ctx context.Context, req bus.PutRequest) (bus.PutReply, error) {
	var rep bus.PutReply
	err := c.request(ctx, bus.OpPut, req, &rep)
	return rep, err
}

// Get reads the latest version of a path. A stale get goes to
// ms.api.get.stale, which the member nodes serve themselves (coalesced
// with the stale gets of others, gets.go); one a node
// refuses as unavailable (stopping, stalled, overloaded), or that gets no
// answer in its share of the time, is asked again, 3 times in all, since
// the NATS server likely picks another member; with no node listening
// there (none up, or nodes older than the subject) it goes to ms.api.get,
// whose router forwards it to a live member or says why it cannot.
func (c *Client) Get(ctx context.Context, req bus.GetRequest) (bus.GetReply, error) {
	var rep bus.GetReply
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	if req.Consistency != bus.Stale {
		err := errAlone
		if req.MinSeq == 0 {
			err = c.coalescedGet(ctx, c.lin, req, &rep)
		}
		if errors.Is(err, errAlone) {
			rep = bus.GetReply{}
			err = c.request(ctx, bus.OpGet, req, &rep)
		}
		return rep, err
	}
	var err error
	for asks := staleAsks; asks > 0; asks-- {
		rep, err = bus.GetReply{}, errAlone
		if asks == staleAsks && req.MinSeq == 0 {
			err = c.coalescedGet(ctx, c.stale, req, &rep)
		}
		if errors.Is(err, errAlone) {
			rep = bus.GetReply{}
			err = c.staleGet(ctx, req, asks, &rep)
		}
		if errors.Is(err, nats.ErrNoResponders) {
			rep = bus.GetReply{}
			err = c.request(ctx, bus.OpGet, req, &rep)
			break
		}
		if !bus.HasCode(err, bus.CodeUnavailable) && !(errors.Is(err, ErrTimeout) && ctx.Err() == nil) {
			break
		}
	}
	return rep, err
}

// staleAsks is how many times a stale get is asked on ms.api.get.stale.
const staleAsks = 3

// errAlone says ask alone: a get not to be coalesced (min_seq, or asked
// again), or one whose reply was left out of its batch's.
var errAlone = errors.New("client: the get's reply did not fit in its batch's")

// staleGet asks ms.api.get.stale once. A get without min_seq, which a
// node answers at once, has 1/asks of the time left: a member killed with
// it in hand answers nothing, and the rest of the time is for asking
// another. A get waiting for its min_seq has all of it.
func (c *Client) staleGet(ctx context.Context, req bus.GetRequest, asks int, rep *bus.GetReply) error {
	if dl, _ := ctx.Deadline(); req.MinSeq == 0 && asks > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(asks))
		defer cancel()
	}
	return c.requestOn(ctx, c.sub.StaleGet(), req, rep)
}

// History reads one page of a path's versions, oldest first.
func (c *Client) History(ctx context.Context, req bus.HistoryRequest) (bus.HistoryReply, error) {
	var rep bus.HistoryReply
	err := c.request(ctx, bus.OpHistory, req, &rep)
	return rep, err
}

// Versions calls fn with every version of req.Path that req selects,
// oldest first, paging through the store's pages (req.Limit is the page
// size) until fn returns an error or the versions end.
func (c *Client) Versions(ctx context.Context, req bus.HistoryRequest, fn func(bus.Version) error) error {
	for {
		h, err := c.History(ctx, req)
		if err != nil {
			return err
		}
		for _, v := range h.Values {
			if err := fn(v); err != nil {
				return err
			}
		}
		if !h.More || len(h.Values) == 0 {
			return nil
		}
		req.AfterSeq = h.Values[len(h.Values)-1].Seq
	}
}

// Ls lists the children of a folder ("" is the root).
func (c *Client) Ls(ctx context.Context, path string) ([]string, error) {
	var rep bus.LsReply
	err := c.request(ctx, bus.OpLs, bus.LsRequest{Path: path}, &rep)
	return rep.Children, err
}

// Tree reads the latest version of every path under a folder, or, with At,
// the latest as of that time.
func (c *Client) Tree(ctx context.Context, req bus.TreeRequest) (bus.TreeReply, error) {
	var rep bus.TreeReply
	err := c.request(ctx, bus.OpTree, req, &rep)
	return rep, err
}

// Subtree calls fn with the latest version of every path under req.Path,
// in path order, paging through the store's pages (req.Limit is the page
// size) until fn returns an error or the paths end.
func (c *Client) Subtree(ctx context.Context, req bus.TreeRequest, fn func(bus.PathVersion) error) error {
	for {
		rep, err := c.Tree(ctx, req)
		if err != nil {
			return err
		}
		for _, pv := range rep.Values {
			if err := fn(pv); err != nil {
				return err
			}
		}
		if !rep.More || len(rep.Values) == 0 {
			return nil
		}
		req.After = rep.Values[len(rep.Values)-1].Path
	}
}

// Agg summarises a path's versions in the store: count, min, max, mean,
// first and last, overall and per bucket.
func (c *Client) Agg(ctx context.Context, req bus.AggRequest) (bus.AggReply, error) {
	var rep bus.AggReply
	err := c.request(ctx, bus.OpAgg, req, &rep)
	return rep, err
}

// Status reads the view and every node's state.
func (c *Client) Status(ctx context.Context) (bus.StatusReply, error) {
	var rep bus.StatusReply
	err := c.request(ctx, bus.OpStatus, struct{}{}, &rep)
	return rep, err
}

// Watch calls fn for every event under pattern, a path that may end in ">"
// (a whole subtree) or hold "*" segments, until ctx ends. Events are sent
// once, by the leader: one can be missed across a reconnect or a leader
// change; PrevSeq shows the gap (query.Follow fills it).
func (c *Client) Watch(ctx context.Context, pattern string, fn func(bus.Event)) error {
	ch := make(chan *nats.Msg, 1024)
	s, err := c.nc.ChanSubscribe(c.sub.Prefix+".ev."+bus.PathToTokens(pattern), ch)
	if err != nil {
		return fmt.Errorf("client: watch %s: %w", pattern, err)
	}
	defer s.Unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			var ev bus.Event
			if bus.Decode(m.Data, &ev) == nil {
				fn(ev)
			}
		}
	}
}

// Ingest publishes a raw value on ms.in.<tokens>, fire and forget: fast,
// but a value in flight when a node or the connection fails can be lost.
// A non-zero at is the value's event time.
func (c *Client) Ingest(path string, value []byte, at time.Time) error {
	msg := nats.NewMsg(c.sub.In(path))
	msg.Data = value
	if !at.IsZero() {
		msg.Header.Set(bus.HeaderEventTime, at.UTC().Format(time.RFC3339Nano))
	}
	if c.opts.User != "" {
		msg.Header.Set(bus.HeaderUser, c.opts.User)
	}
	if err := c.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("client: ingest %s: %w", path, err)
	}
	return nil
}

// Flush waits until the server has every published message.
func (c *Client) Flush(ctx context.Context) error {
	return c.nc.FlushWithContext(ctx)
}

// redacted is a server list (URLs, comma separated) with each password
// shown as xxxxx: an error message must not print it.
func redacted(urls string) string {
	list := strings.Split(urls, ",")
	for i, s := range list {
		if u, err := neturl.Parse(strings.TrimSpace(s)); err == nil {
			list[i] = u.Redacted()
		}
	}
	return strings.Join(list, ",")
}
