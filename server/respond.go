package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// MaxBodyBytes bounds request bodies; nothing in the API comes near it.
const MaxBodyBytes = 1 << 20

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError answers with the API error shape. Anything that is not an
// *api.Error is a server fault: it is logged with the request id and the
// client gets a generic 500 that leaks nothing.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var apiErr *api.Error
	if !errors.As(err, &apiErr) {
		slog.ErrorContext(r.Context(), "internal error", "error", err.Error())
		apiErr = &api.Error{Code: api.CodeInternal, Status: http.StatusInternalServerError,
			Message: "internal error; the server log has the details under request id " + w.Header().Get("X-Request-Id")}
	}
	writeJSON(w, apiErr.Status, api.ErrorBody{Error: apiErr})
}

// decodeJSON reads a request body strictly: unknown fields, wrong types,
// trailing data and oversize bodies are each a 4xx that names the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, into any) error {
	return decodeJSONWithin(w, r, into, MaxBodyBytes)
}

// decodeJSONWithin is decodeJSON for a body of at most limit bytes.
func decodeJSONWithin(w http.ResponseWriter, r *http.Request, into any, limit int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &api.Error{Code: api.CodeMalformedJSON, Field: "body", Status: http.StatusUnsupportedMediaType,
			Message: fmt.Sprintf("Content-Type must be application/json, got %q", ct)}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		if bad := checkJSONText(raw); bad != nil {
			return bad
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err = dec.Decode(into); err == nil && dec.More() {
			return &api.Error{Code: api.CodeMalformedJSON, Field: "body", Status: http.StatusBadRequest, Message: "body holds more than one JSON value"}
		}
	}
	if err == nil {
		return nil
	}
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		maxErr    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &maxErr):
		return &api.Error{Code: api.CodeBodyTooLarge, Field: "body", Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("body is larger than %d bytes", limit)}
	case errors.As(err, &syntaxErr):
		return &api.Error{Code: api.CodeMalformedJSON, Field: "body", Status: http.StatusBadRequest,
			Message: fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)}
	case errors.Is(err, io.EOF):
		return &api.Error{Code: api.CodeMalformedJSON, Field: "body", Status: http.StatusBadRequest, Message: "body is empty; a JSON object is required"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &api.Error{Code: api.CodeMalformedJSON, Field: "body", Status: http.StatusBadRequest, Message: "malformed JSON: body ends early"}
	case errors.As(err, &typeErr):
		field := jsonPath(typeErr.Field)
		if field == "" {
			field = "body"
		}
		return api.FieldError(field, "must be of JSON type %s, got %s", jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &api.Error{Code: api.CodeUnknownField, Field: name, Status: http.StatusBadRequest, Message: "is not a known field"}
	}
	return &api.Error{Code: api.CodeMalformedJSON, Field: "body", Status: http.StatusBadRequest, Message: "malformed JSON: " + err.Error()}
}

func jsonTypeName(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"), strings.HasPrefix(kind, "float"):
		return "number"
	case kind == "slice", kind == "array":
		return "array"
	case kind == "struct", kind == "map", kind == "ptr":
		return "object"
	case kind == "bool":
		return "boolean"
	}
	return kind
}

// ifMatch reads the expected version from If-Match ("7", W/"7" or 7).
func ifMatch(r *http.Request) (*int64, error) {
	h := r.Header.Get("If-Match")
	if h == "" {
		return nil, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v < 1 {
		return nil, api.FieldError("If-Match", "must be a positive object version, got %q", h)
	}
	return &v, nil
}

func etag(version int64) string { return strconv.Quote(strconv.FormatInt(version, 10)) }

// jsonPath drops the Go names of embedded structs that encoding/json puts
// in front of a field path ("StorageSpec.name" becomes "name"), leaving the
// path as the client wrote it.
func jsonPath(goPath string) string {
	parts := strings.Split(goPath, ".")
	for len(parts) > 1 && parts[0] != "" && unicode.IsUpper(rune(parts[0][0])) {
		parts = parts[1:]
	}
	return strings.Join(parts, ".")
}

// decodeValid decodes a request body (decodeJSON) into req and checks its
// fields with its Validate, answering the first error itself: false when
// it did.
func decodeValid[T any, P interface {
	*T
	Validate() *api.Error
}](w http.ResponseWriter, r *http.Request, req P) bool {
	err := decodeJSON(w, r, req)
	if err == nil {
		if bad := req.Validate(); bad != nil {
			err = bad
		}
	}
	if err != nil {
		writeError(w, r, err)
		return false
	}
	return true
}
