package server

import (
	"github.com/havenbackup/terraform-provider-haven/server/auth"
)

// Caller is a kind of caller the authorization table has a column for.
type Caller int

// The columns of the authorization table, in order.
const (
	CallerAdmin Caller = iota
	CallerOperator
	// CallerGroupAdminIn is a group_admin acting on objects of its groups,
	// CallerGroupAdminOut one acting on another group's.
	CallerGroupAdminIn
	CallerGroupAdminOut
	CallerReadOnly
	// CallerAgent is an agent's own credential.
	CallerAgent
	// CallerNone sends no token.
	CallerNone
	NumCallers
)

func (c Caller) String() string {
	return [...]string{"admin", "operator", "group_admin in its group", "group_admin outside its groups", "read_only", "agent", "no token"}[c]
}

// Allowed is the cell of a caller the API lets through: the answer is then
// the operation's own (200, 201, 202, 204, or 400, 404, 409, 422 for the
// request itself), never 401 or 403.
const Allowed = 0

// Access is one row of the authorization table: the permission the route
// gate checks, and the status each column of callers gets.
type Access struct {
	// Public routes need no token; Perm is what the others need.
	Public bool
	Perm   auth.Permission
	// Expect is each caller's status, indexed by Caller: Allowed, 401 or
	// 403. A group_admin's in and out columns differ where the handler
	// checks the object's group on top of the route gate.
	Expect [NumCallers]int
}

// The kinds of rows. Each spells out its cells, so the table reads as the
// matrix it is; the route gate enforces Perm, handlers the group columns.
var (
	public = Access{Public: true}
	// activation is public too, but its credential is the one-time
	// activation token in the body: whatever bearer token comes with it,
	// a body without a valid activation token gets 401.
	activation = Access{Public: true, Expect: [NumCallers]int{401, 401, 401, 401, 401, 401, 401}}
	// readAny: every role reads everything; agents read nothing.
	readAny = Access{Perm: auth.Read, Expect: [NumCallers]int{Allowed, Allowed, Allowed, Allowed, Allowed, 403, 401}}
	// writeGlobal: objects every group shares, and work on a whole storage.
	writeGlobal = Access{Perm: auth.WriteGlobal, Expect: [NumCallers]int{Allowed, Allowed, 403, 403, 403, 403, 401}}
	// writeHavenHost: file servers, as the matrix sends them: of location
	// "server", the Haven host itself, which only admins create, change or
	// delete. Operators write file servers reached through agents.
	writeHavenHost = Access{Perm: auth.WriteGlobal, Expect: [NumCallers]int{Allowed, 403, 403, 403, 403, 403, 401}}
	// writeInGroup: protected assets and their jobs and points; a group
	// admin only within its groups.
	writeInGroup = Access{Perm: auth.WriteAssets, Expect: [NumCallers]int{Allowed, Allowed, Allowed, 403, 403, 403, 401}}
	// readInGroup: the contents of recovery points (file names and
	// bytes, which are the protected data itself): every reading role,
	// but a group admin only within its groups, as for restores.
	readInGroup = Access{Perm: auth.Read, Expect: [NumCallers]int{Allowed, Allowed, Allowed, 403, Allowed, 403, 401}}
	// manageTokens and readAudit: admins only.
	manageTokens = Access{Perm: auth.ManageTokens, Expect: [NumCallers]int{Allowed, 403, 403, 403, 403, 403, 401}}
	readAudit    = Access{Perm: auth.ReadAudit, Expect: [NumCallers]int{Allowed, 403, 403, 403, 403, 403, 401}}
	// importStorages: admins only, since an import lists and restores the
	// points of every group that the storage holds.
	importStorages = Access{Perm: auth.ImportStorages, Expect: [NumCallers]int{Allowed, 403, 403, 403, 403, 403, 401}}
	// agentOnly: the agent protocol, for agent credentials alone.
	agentOnly = Access{Perm: auth.AgentCall, Expect: [NumCallers]int{403, 403, 403, 403, 403, Allowed, 401}}
)

// authorization is the authorization table: every operation the API
// serves, by route pattern, and who may call it. The server takes each
// route's permission from here, and a route without a row refuses every
// caller. TestAuthorizationMatrix sends every operation of the OpenAPI
// document as every column of callers and holds the answers to this table.
var authorization = map[string]Access{
	"GET /healthz":             public,
	"GET /readyz":              public,
	"GET /metrics":             public,
	"GET /v1/openapi.json":     public,
	"GET /v1/version":          public,
	"POST /v1/agents/activate": activation,

	"GET /v1/storages":              readAny,
	"POST /v1/storages":             writeGlobal,
	"POST /v1/storages/import":      importStorages,
	"GET /v1/storages/{id}":         readAny,
	"PUT /v1/storages/{id}":         writeGlobal,
	"DELETE /v1/storages/{id}":      writeGlobal,
	"POST /v1/storages/{id}/verify": writeGlobal,
	"POST /v1/storages/{id}/gc":     writeGlobal,

	"GET /v1/backup-policies":               readAny,
	"POST /v1/backup-policies":              writeGlobal,
	"GET /v1/backup-policies/{id}":          readAny,
	"PUT /v1/backup-policies/{id}":          writeGlobal,
	"DELETE /v1/backup-policies/{id}":       writeGlobal,
	"POST /v1/backup-policies/{id}/preview": readAny,

	"GET /v1/file-servers":         readAny,
	"POST /v1/file-servers":        writeHavenHost,
	"GET /v1/file-servers/{id}":    readAny,
	"PUT /v1/file-servers/{id}":    writeHavenHost,
	"DELETE /v1/file-servers/{id}": writeHavenHost,
	// Only agent file servers have an activation token to issue, and
	// operators manage those.
	"POST /v1/file-servers/{id}/activation": writeGlobal,

	"GET /v1/filesets":         readAny,
	"POST /v1/filesets":        writeInGroup,
	"GET /v1/filesets/{id}":    readAny,
	"PUT /v1/filesets/{id}":    writeInGroup,
	"DELETE /v1/filesets/{id}": writeInGroup,

	"GET /v1/database-servers":         readAny,
	"POST /v1/database-servers":        writeGlobal,
	"GET /v1/database-servers/{id}":    readAny,
	"PUT /v1/database-servers/{id}":    writeGlobal,
	"DELETE /v1/database-servers/{id}": writeGlobal,

	"GET /v1/database-sets":         readAny,
	"POST /v1/database-sets":        writeInGroup,
	"GET /v1/database-sets/{id}":    readAny,
	"PUT /v1/database-sets/{id}":    writeInGroup,
	"DELETE /v1/database-sets/{id}": writeInGroup,

	"GET /v1/nas-devices":         readAny,
	"POST /v1/nas-devices":        writeGlobal,
	"GET /v1/nas-devices/{id}":    readAny,
	"PUT /v1/nas-devices/{id}":    writeGlobal,
	"DELETE /v1/nas-devices/{id}": writeGlobal,

	"GET /v1/nas-shares":         readAny,
	"POST /v1/nas-shares":        writeInGroup,
	"GET /v1/nas-shares/{id}":    readAny,
	"PUT /v1/nas-shares/{id}":    writeInGroup,
	"DELETE /v1/nas-shares/{id}": writeInGroup,

	"GET /v1/vcenters":          readAny,
	"POST /v1/vcenters":         writeGlobal,
	"GET /v1/vcenters/{id}":     readAny,
	"PUT /v1/vcenters/{id}":     writeGlobal,
	"DELETE /v1/vcenters/{id}":  writeGlobal,
	"GET /v1/vcenters/{id}/vms": readAny,

	"GET /v1/aws-targets":         readAny,
	"POST /v1/aws-targets":        writeGlobal,
	"GET /v1/aws-targets/{id}":    readAny,
	"PUT /v1/aws-targets/{id}":    writeGlobal,
	"DELETE /v1/aws-targets/{id}": writeGlobal,

	"GET /v1/dr-plans":                 readAny,
	"POST /v1/dr-plans":                writeGlobal,
	"GET /v1/dr-plans/{id}":            readAny,
	"PUT /v1/dr-plans/{id}":            writeGlobal,
	"DELETE /v1/dr-plans/{id}":         writeGlobal,
	"POST /v1/dr-plans/{id}/replicate": writeGlobal,
	"POST /v1/dr-plans/{id}/test":      writeGlobal,
	"POST /v1/dr-plans/{id}/failover":  writeGlobal,
	"GET /v1/dr-runs":                  readAny,
	"GET /v1/dr-runs/{id}":             readAny,
	"POST /v1/dr-runs/{id}/cleanup":    writeGlobal,
	"POST /v1/dr-runs/{id}/failback":   writeGlobal,

	"GET /v1/protected-vms":         readAny,
	"POST /v1/protected-vms":        writeInGroup,
	"GET /v1/protected-vms/{id}":    readAny,
	"PUT /v1/protected-vms/{id}":    writeInGroup,
	"DELETE /v1/protected-vms/{id}": writeInGroup,

	"GET /v1/vm-protection-rules":         readAny,
	"POST /v1/vm-protection-rules":        writeInGroup,
	"GET /v1/vm-protection-rules/{id}":    readAny,
	"PUT /v1/vm-protection-rules/{id}":    writeInGroup,
	"DELETE /v1/vm-protection-rules/{id}": writeInGroup,

	"POST /v1/assets/{id}/backup": writeInGroup,
	"POST /v1/restores":           writeInGroup,
	"GET /v1/jobs":                readAny,
	"GET /v1/jobs/{id}":           readAny,
	// A dry run's plan names the point's files and the target's.
	"GET /v1/jobs/{id}/plan":         readInGroup,
	"POST /v1/jobs/{id}/cancel":      writeInGroup,
	"GET /v1/points":                 readAny,
	"GET /v1/points/{id}":            readAny,
	"PUT /v1/points/{id}/legal-hold": writeInGroup,
	"GET /v1/points/{id}/entries":    readInGroup,
	"GET /v1/points/{id}/content":    readInGroup,
	"GET /v1/points/diff":            readInGroup,
	// A find searches only the points the caller may browse.
	"GET /v1/points/find": readAny,

	"GET /v1/agent/work":                agentOnly,
	"POST /v1/agent/heartbeat":          agentOnly,
	"POST /v1/agent/jobs/{id}/has":      agentOnly,
	"POST /v1/agent/jobs/{id}/chunks":   agentOnly,
	"POST /v1/agent/jobs/{id}/load":     agentOnly,
	"POST /v1/agent/jobs/{id}/progress": agentOnly,
	"POST /v1/agent/jobs/{id}/complete": agentOnly,
	"POST /v1/agent/jobs/{id}/fail":     agentOnly,
	"POST /v1/agent/jobs/{id}/tail":     agentOnly,

	"GET /v1/tokens":         manageTokens,
	"POST /v1/tokens":        manageTokens,
	"DELETE /v1/tokens/{id}": manageTokens,
	"GET /v1/whoami":         readAny,
	"GET /v1/audit":          readAudit,
}

// Authorization returns the authorization table, for the test that holds
// the server to it.
func Authorization() map[string]Access {
	out := make(map[string]Access, len(authorization))
	for k, v := range authorization {
		out[k] = v
	}
	return out
}
