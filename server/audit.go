package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// isWrite tells the methods the audit log records: everything but reads.
func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// audit records a finished API write: who made it (the token the request
// presented, known or not), what (method, route pattern, object), from
// where (the connection's peer address: no forwarding header is trusted,
// since any client can set one) and its status. Refusals are recorded as
// much as successes. Successful agent-protocol calls are not: they are the
// data plane (chunk uploads, progress), which the job records already
// follow, and a row each would dwarf every other entry.
func (s *Server) audit(r *http.Request, info *requestInfo, rec *statusRecorder, status int) {
	method, route, ok := strings.Cut(r.Pattern, " ")
	if !ok || !isWrite(method) || !strings.HasPrefix(route, "/v1/") {
		return // reads, and requests no route matched
	}
	if strings.HasPrefix(route, "/v1/agent/") && status < 400 {
		return
	}
	e := db.AuditEntry{TokenID: info.tokenID, TokenName: info.tokenName, Role: info.role, Method: method, Route: route,
		ObjectID: r.PathValue("id"), RemoteAddr: r.RemoteAddr, Status: status, RequestID: info.id}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		e.RemoteAddr = host
	}
	if e.ObjectID == "" && status < 300 && rec.keep {
		// A create names its new object only in the answer.
		var created struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(rec.body, &created) == nil {
			e.ObjectID = created.ID
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := s.db.RecordAudit(ctx, e); err != nil {
		s.log.ErrorContext(r.Context(), "recording the audit log", "method", method, "route", route, "status", status, "error", err.Error())
	}
}

// listAudit answers GET /v1/audit: one page of the audit log, newest first,
// filtered by token, object, method and time.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var before int64
	if after != "" {
		if before, err = strconv.ParseInt(after, 10, 64); err != nil || before < 1 {
			writeError(w, r, badPageToken())
			return
		}
	}
	f, err := auditFilter(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	rows, err := s.db.ListAudit(r.Context(), f, before, limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out, _ := pageOf(rows, limit, func(e db.AuditEntry) string { return strconv.FormatInt(e.ID, 10) }, presentAudit)
	writeJSON(w, http.StatusOK, out)
}

func auditFilter(r *http.Request) (db.AuditFilter, error) {
	q := r.URL.Query()
	f := db.AuditFilter{TokenID: q.Get("token_id"), ObjectID: q.Get("object_id"), Method: strings.ToUpper(q.Get("method"))}
	if f.TokenID != "" && !uuidPattern.MatchString(f.TokenID) {
		return f, api.FieldError("token_id", "must be a token id (a UUID), got %q", f.TokenID)
	}
	for _, tf := range []struct {
		name string
		into **time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := q.Get(tf.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, api.FieldError(tf.name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", v)
		}
		*tf.into = &t
	}
	return f, nil
}

func presentAudit(e db.AuditEntry) (api.AuditEntry, error) {
	return api.AuditEntry{ID: e.ID, At: e.At, TokenID: e.TokenID, TokenName: e.TokenName, Role: e.Role, Method: e.Method,
		Route: e.Route, ObjectID: e.ObjectID, RemoteAddr: e.RemoteAddr, Status: e.Status, RequestID: e.RequestID}, nil
}
