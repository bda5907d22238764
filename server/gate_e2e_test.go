package server_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// requestGate is a proxy in front of moto (an AWS API or an S3 store) that
// holds the requests a predicate picks until it is opened: a job is then
// caught part way, for as long as a test needs (to kill its server). The
// predicate runs under the gate's lock, so it may keep state of its own.
type requestGate struct {
	proxy   *httputil.ReverseProxy
	mu      sync.Mutex
	hold    func(r *http.Request, body []byte) bool
	held    int
	release chan struct{}
}

func newRequestGate(t *testing.T, endpoint string) (*requestGate, string) {
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	g := &requestGate{proxy: httputil.NewSingleHostReverseProxy(target), release: make(chan struct{})}
	front := httptest.NewServer(g)
	t.Cleanup(front.Close)
	t.Cleanup(g.open)
	return g, front.URL
}

func (g *requestGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	g.mu.Lock()
	hold := g.hold != nil && g.hold(r, body)
	if hold {
		g.held++
	}
	release := g.release
	g.mu.Unlock()
	if hold {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	}
	g.proxy.ServeHTTP(w, r)
}

// holdWhere starts holding what pick picks.
func (g *requestGate) holdWhere(pick func(r *http.Request, body []byte) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.held, g.release = pick, 0, make(chan struct{})
}

func (g *requestGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold != nil {
		g.hold = nil
		close(g.release)
	}
}

func (g *requestGate) heldRequests() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}
