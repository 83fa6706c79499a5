// Package client is the Go client of memstore's public wire API, used by
// users and by our tools (CLI, sensor, query): put, get, history, ls, tree,
// status and watch, over NATS. Errors the store answers are *bus.Error, so
// callers can match their code.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
	// Name of the NATS connection.
	Name string
}

// Client talks to a memstore cluster.
type Client struct {
	nc   *nats.Conn
	own  bool // the client opened nc and closes it
	sub  bus.Subjects
	opts Options
}

// Dial connects to the NATS server at url.
func Dial(url string, opts Options) (*Client, error) {
	if opts.Name == "" {
		opts.Name = "memstore-client"
	}
	nc, err := nats.Connect(url, nats.Name(opts.Name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("client: connect %s: %w", url, err)
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
	return &Client{nc: nc, sub: bus.NewSubjects(opts.Prefix), opts: opts}
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
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	msg := nats.NewMsg(c.sub.API(op))
	msg.Data = bus.Encode(req)
	if c.opts.User != "" {
		msg.Header.Set(bus.HeaderUser, c.opts.User)
	}
	if dl, ok := ctx.Deadline(); ok {
		// The router answers a little before the client gives up.
		msg.Header.Set(bus.HeaderDeadline, strconv.FormatInt(time.Until(dl).Milliseconds()*9/10, 10))
	}
	m, err := c.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w (%s)", ErrTimeout, op)
	case errors.Is(err, nats.ErrNoResponders):
		return bus.Errorf(bus.CodeUnavailable, "no memstore router is listening on %s", c.sub.API(op))
	case err != nil:
		return fmt.Errorf("client: %s: %w", op, err)
	}
	if e := bus.Decode(m.Data, rep); e != nil {
		return e
	}
	return rep.Err()
}

// Put writes one value and returns once it is committed.
func (c *Client) Put(ctx context.Context, path string, value json.RawMessage) (bus.PutReply, error) {
	var rep bus.PutReply
	err := c.request(ctx, bus.OpPut, bus.PutRequest{Path: path, Value: value}, &rep)
	return rep, err
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

// Get reads the latest version of a path.
func (c *Client) Get(ctx context.Context, req bus.GetRequest) (bus.GetReply, error) {
	var rep bus.GetReply
	err := c.request(ctx, bus.OpGet, req, &rep)
	return rep, err
}

// History reads one page of a path's versions, oldest first.
func (c *Client) History(ctx context.Context, req bus.HistoryRequest) (bus.HistoryReply, error) {
	var rep bus.HistoryReply
	err := c.request(ctx, bus.OpHistory, req, &rep)
	return rep, err
}

// Ls lists the children of a folder ("" is the root).
func (c *Client) Ls(ctx context.Context, path string) ([]string, error) {
	var rep bus.LsReply
	err := c.request(ctx, bus.OpLs, bus.LsRequest{Path: path}, &rep)
	return rep.Children, err
}

// Tree reads the latest version of every path under path.
func (c *Client) Tree(ctx context.Context, path string, limit int) (bus.TreeReply, error) {
	var rep bus.TreeReply
	err := c.request(ctx, bus.OpTree, bus.TreeRequest{Path: path, Limit: limit}, &rep)
	return rep, err
}

// Status reads the view and every node's state.
func (c *Client) Status(ctx context.Context) (bus.StatusReply, error) {
	var rep bus.StatusReply
	err := c.request(ctx, bus.OpStatus, struct{}{}, &rep)
	return rep, err
}

// Watch calls fn for every committed version under pattern, a path that may
// end in ">" (a whole subtree) or hold "*" segments, until ctx ends.
func (c *Client) Watch(ctx context.Context, pattern string, fn func(bus.PathVersion)) error {
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
			var pv bus.PathVersion
			if bus.Decode(m.Data, &pv) == nil {
				fn(pv)
			}
		}
	}
}

// Ingest publishes a raw value on ms.in.<tokens>, fire and forget: fast,
// but a value in flight when a node or the connection fails can be lost.
func (c *Client) Ingest(path string, value []byte) error {
	if err := c.nc.Publish(c.sub.In(path), value); err != nil {
		return fmt.Errorf("client: ingest %s: %w", path, err)
	}
	return nil
}

// Flush waits until the server has every published message.
func (c *Client) Flush(ctx context.Context) error {
	return c.nc.FlushWithContext(ctx)
}
