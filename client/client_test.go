package client

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"memstore/bus"
)

// TestDialNoticesAFrozenLink: a link that stops carrying bytes but keeps
// its socket open (a cut network) is noticed within seconds, not after the
// default two minutes of unanswered pings, so a sensor or a follower
// reconnects.
func TestDialNoticesAFrozenLink(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	cfg := bus.DefaultServerConfig(t.TempDir())
	cfg.Port = -1
	srv, err := bus.StartServer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	p := newFreezer(t, srv.ClientURL())
	c, err := Dial("nats://"+p.ln.Addr().String(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.nc.IsConnected() {
		t.Fatal("not connected through the proxy")
	}
	p.freeze()
	deadline := time.Now().Add(20 * time.Second)
	for c.nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the client still thinks it is connected 20 s after its link froze")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freezer forwards TCP connections to a server until freeze, after which
// it keeps the sockets open and carries nothing.
type freezer struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen bool
	conns  []net.Conn
}

func newFreezer(t *testing.T, url string) *freezer {
	t.Helper()
	target := url[len("nats://"):]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	t.Cleanup(f.close)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, in, out)
			f.mu.Unlock()
			go f.pipe(in, out)
			go f.pipe(out, in)
		}
	}()
	return f
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		f.mu.Lock()
		frozen := f.frozen
		f.mu.Unlock()
		if n > 0 && !frozen {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	f.frozen = true
	f.mu.Unlock()
}

func (f *freezer) close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}
