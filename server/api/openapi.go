package api

import _ "embed"

// OpenAPI is the API contract, served at /v1/openapi.json. The Go types in
// this package are checked against it by tests, field by field, and the
// server's routes are checked against its paths.
//
//go:embed openapi.json
var OpenAPI []byte
