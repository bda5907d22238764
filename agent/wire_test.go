package agent_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// wireProxy stands between an agent and the server, as a network would:
// it counts every byte the agent sends over the wire, and can stop a
// restore's chunk stream part way to let a test act (kill the agent,
// change the files being written) before the rest flows.
type wireProxy struct {
	URL  string
	sent atomic.Int64

	mu        sync.Mutex
	holdAfter int64
	onHold    func()
	// uploadsHeld, while open, keeps chunk uploads from reaching the
	// server.
	uploadsHeld chan struct{}
	// refuseProgress answers every progress report as a server older
	// than the agent answers one with a field it does not know.
	refuseProgress bool
	refused        atomic.Int64
}

func startProxy(t testing.TB, server string) *wireProxy {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	p := &wireProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		after, fn := p.holdAfter, p.onHold
		p.mu.Unlock()
		if fn != nil && strings.HasSuffix(resp.Request.URL.Path, "/load") {
			resp.Body = &holdingBody{ReadCloser: resp.Body, after: after, fn: fn}
		}
		return nil
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		held, refuse := p.uploadsHeld, p.refuseProgress
		p.mu.Unlock()
		if held != nil && strings.HasSuffix(r.URL.Path, "/chunks") {
			<-held
		}
		if refuse && strings.HasSuffix(r.URL.Path, "/progress") {
			io.Copy(io.Discard, r.Body)
			p.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"code":"malformed_json","field":"progress.estimated","message":"unknown field \"estimated\""}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	srv.Listener = &countingListener{Listener: srv.Listener, n: &p.sent}
	srv.Start()
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// holdLoads makes every restore chunk stream of more than after bytes call
// fn once that many bytes went through, before the rest does; nil fn
// stops holding.
func (p *wireProxy) holdLoads(after int64, fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holdAfter, p.onHold = after, fn
}

// holdUploads keeps the agent's chunk uploads waiting, as a stalled link
// would, until the returned release is called.
func (p *wireProxy) holdUploads() (release func()) {
	held := make(chan struct{})
	p.mu.Lock()
	p.uploadsHeld = held
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.uploadsHeld = nil
			p.mu.Unlock()
			close(held)
		})
	}
}

type holdingBody struct {
	io.ReadCloser
	after, n int64
	fired    bool
	fn       func()
}

func (b *holdingBody) Read(p []byte) (int, error) {
	if !b.fired && b.n >= b.after {
		b.fired = true
		b.fn()
	}
	if !b.fired && b.n+int64(len(p)) > b.after {
		p = p[:b.after-b.n]
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// countingListener counts the bytes read from every accepted connection:
// all the agent sent, headers and bodies.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}
