package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/auth"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/files"
)

// activateAgent trades a file server's one-time activation token for the
// agent's own credential. It is the one agent call without a bearer token.
func (s *Server) activateAgent(w http.ResponseWriter, r *http.Request) {
	var req api.ActivateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if !auth.LooksLikeSecret(req.ActivationToken) {
		writeError(w, r, &api.Error{Code: api.CodeUnauthenticated, Field: "activation_token", Status: http.StatusUnauthorized,
			Message: "is not an activation token"})
		return
	}
	secret, hash := auth.NewSecret()
	fsID, err := s.db.ActivateAgent(r.Context(), auth.Hash(req.ActivationToken), hash, req.Hostname)
	if errors.Is(err, db.ErrBadActivation) {
		writeError(w, r, &api.Error{Code: api.CodeUnauthenticated, Field: "activation_token", Status: http.StatusUnauthorized,
			Message: "is unknown, expired or was already used; get a new one (POST /v1/file-servers/{id}/activation, or the haven_file_server_activation ephemeral resource)"})
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "agent activated", "file_server_id", fsID, "hostname", req.Hostname)
	writeJSON(w, http.StatusOK, api.Activation{FileServerID: fsID, Token: secret})
}

// issueActivation answers with the one-time activation token for the
// agent of a file server, so that the token need not be kept from the
// file server's creation (Terraform asks for one whenever it needs it,
// without storing it). While the token is unused and unexpired, every
// call answers with the same one (db.IssueActivation): Terraform opens
// the ephemeral resource on every plan and apply, and a plan must not
// make stale the token an apply handed to a host. {"replace": true}
// issues a new one, which replaces the earlier one (a token that may have
// leaked). An agent already activated keeps working until one activates
// with the new token, which revokes the old credential (ActivateAgent).
func (s *Server) issueActivation(w http.ResponseWriter, r *http.Request) {
	var req api.IssueActivationRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			writeError(w, r, err)
			return
		}
	}
	o, err := s.db.Get(r.Context(), db.FileServers, r.PathValue("id"))
	if errors.Is(err, db.ErrNotFound) {
		writeError(w, r, api.NotFound("file server", r.PathValue("id")))
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	var spec api.FileServerSpec
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		writeError(w, r, err)
		return
	}
	if spec.Location != api.LocationAgent {
		writeError(w, r, api.Unprocessable("location", "file server %s is of location %q, which has no agent to activate", o.Name, spec.Location))
		return
	}
	a, err := activationToken(r.Context(), s.db, s.master, o.ID, req.Replace)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// activationContext binds a sealed activation token to its file server.
func activationContext(fileServerID string) string {
	return "haven/file-server/activation-token:" + fileServerID
}

// activationToken is the file server's pending activation token, a new
// one if it has none (or replace is set).
func activationToken(ctx context.Context, d *db.DB, master *keys.MasterKey, fileServerID string, replace bool) (api.FileServerActivation, error) {
	p, err := d.IssueActivation(ctx, fileServerID, replace, func() (hash, sealed []byte) {
		secret, hash := auth.NewSecret()
		return hash, master.Seal([]byte(secret), activationContext(fileServerID))
	})
	if err != nil {
		return api.FileServerActivation{}, err
	}
	secret, err := master.Open(p.Sealed, activationContext(fileServerID))
	if err != nil {
		return api.FileServerActivation{}, fmt.Errorf("opening the activation token of file server %s: %w", fileServerID, err)
	}
	return api.FileServerActivation{FileServerID: fileServerID, ActivationToken: string(secret), ExpiresAt: p.ExpiresAt}, nil
}

// agentFS resolves the calling agent's file server and records that the
// agent is alive.
func (s *Server) agentFS(r *http.Request) (string, error) {
	p := auth.FromContext(r.Context())
	id, err := s.db.AgentCallIn(r.Context(), p.TokenID)
	if errors.Is(err, db.ErrNotFound) {
		return "", &api.Error{Code: api.CodeForbidden, Status: http.StatusForbidden, Message: "this credential belongs to no file server"}
	}
	return id, err
}

func (s *Server) agentWork(w http.ResponseWriter, r *http.Request) {
	fsID, err := s.agentFS(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	wait := 25 * time.Second
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Minute {
			writeError(w, r, api.FieldError("wait", "must be a duration up to 1m, got %q", v))
			return
		}
		wait = d
	}
	var running []string
	if v := r.URL.Query().Get("running"); v != "" {
		running = strings.Split(v, ",")
		for _, id := range running {
			if !uuidPattern.MatchString(id) {
				writeError(w, r, api.FieldError("running", "must be job ids separated by commas, got %q", id))
				return
			}
		}
	}
	work, err := s.jobs.Agents().Work(r.Context(), fsID, r.URL.Query().Get("instance"), running, wait)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if work == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, work)
}

func (s *Server) agentHeartbeat(w http.ResponseWriter, r *http.Request) {
	if _, err := s.agentFS(r); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// agentJSON adapts a JSON agent call on a job.
func agentJSON[Req any](s *Server, call func(hub *files.Hub, r *http.Request, jobID, fsID string, req Req) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fsID, err := s.agentFS(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		var req Req
		limit := int64(MaxBodyBytes)
		if _, ok := any(&req).(*api.AgentComplete); ok {
			limit = api.MaxCompleteBody // a dry run's plan
		}
		if err := decodeJSONWithin(w, r, &req, limit); err != nil {
			writeError(w, r, err)
			return
		}
		if v, ok := any(&req).(interface{ Validate() *api.Error }); ok {
			if err := v.Validate(); err != nil {
				writeError(w, r, err)
				return
			}
		}
		out, err := call(s.jobs.Agents(), r, r.PathValue("id"), fsID, req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if out == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *Server) agentUpload(w http.ResponseWriter, r *http.Request) {
	fsID, err := s.agentFS(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	body := &countingReader{r: http.MaxBytesReader(w, r.Body, files.MaxUpload)}
	n, err := s.jobs.Agents().Upload(r.Context(), r.PathValue("id"), fsID, body)
	s.metrics.agentSent.Add(float64(body.n))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			err = &api.Error{Code: api.CodeBodyTooLarge, Field: "body", Status: http.StatusRequestEntityTooLarge, Message: "upload larger than 64 MiB"}
		}
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"stored": n})
}

func (s *Server) agentLoad(w http.ResponseWriter, r *http.Request) {
	fsID, err := s.agentFS(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req api.LoadRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	// Headers go out with the first frame; an error after that can only
	// cut the stream short, which the agent detects (missing positions).
	w.Header().Set("Content-Type", "application/octet-stream")
	lw := &lazyWriter{w: w}
	if err := s.jobs.Agents().Load(r.Context(), r.PathValue("id"), fsID, req, lw); err != nil {
		if !lw.started {
			writeError(w, r, err)
			return
		}
		s.log.ErrorContext(r.Context(), "agent load cut short", "error", err.Error())
	}
}

type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.started = true
	return l.w.Write(p)
}
