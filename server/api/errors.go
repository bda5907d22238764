package api

import (
	"fmt"
	"net/http"
)

// Error codes carried in the "code" member of every error response. Clients
// branch on the code, never on the message, so these strings are part of the
// contract and must not change.
const (
	CodeInvalidField    = "invalid_field"
	CodeUnknownField    = "unknown_field"
	CodeMalformedJSON   = "malformed_json"
	CodeBodyTooLarge    = "body_too_large"
	CodeUnauthenticated = "unauthenticated"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeStaleVersion    = "stale_version"
	CodeUnprocessable   = "unprocessable"
	CodeInternal        = "internal"
)

// Error is the body of every non-2xx answer: {"error": {...}}. Status is the
// HTTP status it travelled with; it is not serialized.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	Status  int    `json:"-"`
}

// ErrorBody wraps Error as it appears on the wire.
type ErrorBody struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// FieldError reports an invalid value of one named field (HTTP 400).
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidField, Field: field, Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

// Unprocessable reports a well-formed request that cannot be carried out in
// the current state, such as a storage that fails its probe (HTTP 422).
func Unprocessable(field, format string, args ...any) *Error {
	return &Error{Code: CodeUnprocessable, Field: field, Message: fmt.Sprintf(format, args...), Status: http.StatusUnprocessableEntity}
}

// NotFound reports a missing object (HTTP 404).
func NotFound(kind, id string) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf("%s %q not found", kind, id), Status: http.StatusNotFound}
}

// Conflict reports a uniqueness or state conflict (HTTP 409).
func Conflict(field, format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Field: field, Message: fmt.Sprintf(format, args...), Status: http.StatusConflict}
}

// StaleVersion reports an optimistic-concurrency failure (HTTP 409).
func StaleVersion(kind string, sent, current int64) *Error {
	return &Error{Code: CodeStaleVersion, Field: "version", Status: http.StatusConflict,
		Message: fmt.Sprintf("%s was changed by someone else: you sent version %d, the current version is %d; read it again and retry", kind, sent, current)}
}

// IsNotFound reports whether err is an API 404.
func IsNotFound(err error) bool {
	e, ok := err.(*Error)
	return ok && e.Status == http.StatusNotFound
}
