package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/auth"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

func presentToken(t db.Token) api.Token {
	return api.Token{ID: t.ID, Name: t.Name, Role: t.Role, Groups: t.Groups, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsedAt}
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req api.TokenRequest
	if !decodeValid(w, r, &req) {
		return
	}
	secret, hash := auth.NewSecret()
	t, err := s.db.CreateToken(r.Context(), s.db.Pool, req.Name, req.Role, req.Groups, req.ExpiresAtFrom(time.Now()), hash)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.CreatedToken{Token: presentToken(t), Secret: secret})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if after != "" && !uuidPattern.MatchString(after) {
		writeError(w, r, badPageToken())
		return
	}
	rows, err := s.db.ListTokens(r.Context(), after, limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out, _ := pageOf(rows, limit, func(t db.Token) string { return t.ID }, func(t db.Token) (api.Token, error) { return presentToken(t), nil })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	t, err := s.db.RevokeToken(r.Context(), r.PathValue("id"))
	if errors.Is(err, db.ErrNotFound) {
		err = api.NotFound("token", r.PathValue("id"))
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, presentToken(t))
}

// whoami tells a caller which token it is using; CLIs use it to check setup.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	p := auth.FromContext(r.Context())
	writeJSON(w, http.StatusOK, api.Token{ID: p.TokenID, Name: p.Name, Role: p.Role, Groups: p.Groups})
}
