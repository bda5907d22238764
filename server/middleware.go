package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/auth"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

var (
	uuidPattern      = regexp.MustCompile(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
	requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

type requestInfoKey struct{}

// requestInfo travels in the request context as a pointer, so what inner
// handlers learn (the caller's token) reaches the outer access and audit
// logs.
type requestInfo struct {
	id        string
	tokenID   string
	tokenName string
	role      string
}

// tokenUseGranularity is how stale a token's last-used time may get: a
// client making many requests costs one write per interval, not one each.
const tokenUseGranularity = time.Minute

// requestIDHandler adds the request id of the context to every log record,
// so all lines of one request can be found together.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		r.AddAttrs(slog.String("request_id", info.id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(a)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// statusRecorder remembers the status a handler wrote and, when asked to,
// the start of the body, from which the audit log takes a created object's
// id.
type statusRecorder struct {
	http.ResponseWriter
	status int
	keep   bool
	body   []byte
}

// maxKeptBody bounds what a statusRecorder keeps; a created object's answer
// is far smaller, and a larger one is simply not looked into.
const maxKeptBody = 64 << 10

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if s.keep && len(s.body)+len(b) <= maxKeptBody {
		s.body = append(s.body, b...)
	} else {
		s.keep, s.body = false, nil
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// observe wraps the whole mux: request ids, panic recovery, access logs and
// metrics. The route label is the mux pattern, never the raw path, so ids in
// URLs cannot blow up metric cardinality.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !requestIDPattern.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		info := &requestInfo{id: id}
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
		rec := &statusRecorder{ResponseWriter: w, keep: isWrite(r.Method)}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "handler panic", "panic", fmt.Sprint(p))
				if rec.status == 0 {
					writeError(rec, r, errors.New("panic"))
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			route = strings.TrimPrefix(route, r.Method+" ")
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			elapsed := time.Since(start)
			s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
			s.metrics.latency.WithLabelValues(route, r.Method).Observe(elapsed.Seconds())
			attrs := []any{"method", r.Method, "path", r.URL.Path, "route", route, "status", status,
				"duration_ms", float64(elapsed.Microseconds()) / 1000}
			if info.tokenID != "" {
				attrs = append(attrs, "token_id", info.tokenID)
			}
			s.log.Log(r.Context(), accessLevel(r.Method, route, status), "request", attrs...)
			s.audit(r, info, rec, status)
		}()
		next.ServeHTTP(rec, r)
	})
}

// polledRoutes are read routes that clients poll while they wait (the CLI's
// --wait, the provider's job waits): one INFO line per poll would bury
// every other request in the access log, so their successful answers log
// at DEBUG.
var polledRoutes = map[string]bool{"/v1/jobs/{id}": true}

// accessLevel is the level of a request's access log line.
func accessLevel(method, route string, status int) slog.Level {
	if method == http.MethodGet && polledRoutes[route] && status < 400 {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// authenticate resolves the bearer token and checks the route's permission.
func (s *Server) authenticate(perm auth.Permission, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || secret == "" {
			writeError(w, r, &api.Error{Code: api.CodeUnauthenticated, Field: "Authorization", Status: http.StatusUnauthorized,
				Message: "a bearer token is required (Authorization: Bearer <token>)"})
			return
		}
		t, err := db.Token{}, db.ErrNotFound
		if auth.LooksLikeSecret(secret) {
			t, err = s.db.TokenByHash(r.Context(), s.db.Pool, auth.Hash(secret))
		}
		if errors.Is(err, db.ErrNotFound) {
			writeError(w, r, &api.Error{Code: api.CodeUnauthenticated, Field: "Authorization", Status: http.StatusUnauthorized,
				Message: "the bearer token is unknown"})
			return
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
			info.tokenID, info.tokenName, info.role = t.ID, t.Name, t.Role
		}
		now := time.Now()
		if refusal := deadTokenRefusal(t, now); refusal != nil {
			writeError(w, r, refusal)
			return
		}
		if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= tokenUseGranularity {
			// A failed touch costs the listing some freshness, not the
			// caller its request.
			if err := s.db.TouchToken(r.Context(), t.ID, tokenUseGranularity); err != nil {
				s.log.WarnContext(r.Context(), "recording token use", "token_id", t.ID, "error", err.Error())
			}
		}
		p := &auth.Principal{TokenID: t.ID, Name: t.Name, Role: t.Role, Groups: t.Groups}
		r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		if !p.Allows(perm) {
			writeError(w, r, &api.Error{Code: api.CodeForbidden, Status: http.StatusForbidden,
				Message: fmt.Sprintf("role %s may not %s", p.Role, perm)})
			return
		}
		next(w, r)
	}
}

// deadTokenRefusal is the 401 for a revoked or expired token, saying which
// and since when so its owner knows to ask for a new one; nil for a live
// token.
func deadTokenRefusal(t db.Token, now time.Time) *api.Error {
	var msg string
	switch {
	case t.RevokedAt != nil:
		msg = fmt.Sprintf("the bearer token %s (%s) was revoked at %s", t.Name, t.ID, t.RevokedAt.UTC().Format(time.RFC3339))
	case t.Expired(now):
		msg = fmt.Sprintf("the bearer token %s (%s) expired at %s; an admin can issue a new one", t.Name, t.ID, t.ExpiresAt.UTC().Format(time.RFC3339))
	default:
		return nil
	}
	return &api.Error{Code: api.CodeUnauthenticated, Field: "Authorization", Status: http.StatusUnauthorized, Message: msg}
}
