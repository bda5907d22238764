// Package auth issues and checks bearer tokens and decides what each role
// may do.
//
// Roles:
//   - admin: everything, including token management;
//   - operator: reads everything and writes storages, policies and protected
//     assets, and runs jobs;
//   - group_admin: reads everything; writes only objects of its
//     administrative groups (global objects such as storages and policies
//     are read-only to it);
//   - read_only: reads only.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// SecretPrefix marks Haven tokens so secret scanners can recognize them.
const SecretPrefix = "hvn_"

// NewSecret returns a fresh bearer secret and its hash.
func NewSecret() (secret string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	secret = SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, Hash(secret)
}

// Hash is what the database stores for a secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// LooksLikeSecret rejects garbage before it costs a database round trip.
func LooksLikeSecret(s string) bool {
	return strings.HasPrefix(s, SecretPrefix) && len(s) == len(SecretPrefix)+43
}

// Principal is the authenticated caller of a request.
type Principal struct {
	TokenID string
	Name    string
	Role    string
	Groups  []string
}

// Permission is what a route needs.
type Permission int

const (
	// Read is any authenticated caller.
	Read Permission = iota
	// WriteGlobal is creating or changing objects shared by every group.
	WriteGlobal
	// WriteAssets is writing protected assets and running their jobs; group
	// admins pass here and are then limited to their groups per object.
	WriteAssets
	// ManageTokens is token administration.
	ManageTokens
	// AgentCall is the agent protocol: only agent credentials.
	AgentCall
	// ReadAudit is reading the audit log: admins only, since it maps who
	// does what from where.
	ReadAudit
	// ImportStorages is adding a storage found with its recovery points
	// (an import after the catalog was lost): admins only, since the
	// points it lists are of every group.
	ImportStorages
)

// RoleAgent is the role of an agent's own credential. It is not one of
// api.Roles: it opens only the agent protocol.
const RoleAgent = "agent"

// Allows reports whether the principal holds the permission.
func (p *Principal) Allows(perm Permission) bool {
	switch perm {
	case Read:
		return slices.Contains(api.Roles, p.Role)
	case WriteGlobal:
		return p.Role == api.RoleAdmin || p.Role == api.RoleOperator
	case WriteAssets:
		return p.Role == api.RoleAdmin || p.Role == api.RoleOperator || p.Role == api.RoleGroupAdmin
	case ManageTokens, ReadAudit, ImportStorages:
		return p.Role == api.RoleAdmin
	case AgentCall:
		return p.Role == RoleAgent
	}
	return false
}

// InGroup reports whether the principal is a group admin of group.
func (p *Principal) InGroup(group string) bool {
	return group != "" && p.Role == api.RoleGroupAdmin && slices.Contains(p.Groups, group)
}

// String names a permission in error messages.
func (perm Permission) String() string {
	switch perm {
	case Read:
		return "read"
	case WriteGlobal:
		return "write storages and policies (admin or operator)"
	case WriteAssets:
		return "write protected assets or run their jobs (admin, operator or group_admin)"
	case ManageTokens:
		return "manage tokens (admin)"
	case AgentCall:
		return "use the agent protocol (agent credentials only)"
	case ReadAudit:
		return "read the audit log (admin)"
	case ImportStorages:
		return "import storages (admin)"
	}
	return "unknown"
}

type principalKey struct{}

// WithPrincipal attaches the caller to a request context.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller, or nil for an unauthenticated request.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
