package contracts

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Code is a stable, machine-readable error code. Codes never change meaning;
// clients switch on them, and the bridge maps them to HTTP statuses.
type Code string

// The error codes simmatch returns.
const (
	CodeMalformedJSON        Code = "malformed_json"         // the body is not valid JSON
	CodeInvalidRequest       Code = "invalid_request"        // valid JSON that breaks the schema or a limit
	CodePayloadTooLarge      Code = "payload_too_large"      // the body is over the size limit
	CodeUnsupportedMediaType Code = "unsupported_media_type" // the body is not application/json
	CodeUnauthorized         Code = "unauthorized"           // missing or wrong credentials
	CodeForbidden            Code = "forbidden"              // valid credentials without the scope the route needs
	CodeRateLimited          Code = "rate_limited"           // the caller's rate limit is spent: retry after Retry-After
	CodeNotFound             Code = "not_found"              // no such route, catalog or product
	CodeConflict             Code = "conflict"               // the request contradicts stored state (e.g. a catalog of another model)
	CodeMethodNotAllowed     Code = "method_not_allowed"     // the route exists for other methods
	CodeOverloaded           Code = "overloaded"             // the processor cannot answer in time now: retry later
	CodeNoProcessor          Code = "no_processor"           // no processor is subscribed: retry later
	CodeTimeout              Code = "timeout"                // no answer within the deadline
	CodeModelError           Code = "model_error"            // tokenization or inference failed
	CodeInternal             Code = "internal"               // a bug: report it with the request id
	CodeJobNotDone           Code = "job_not_done"           // the job's results are not ready yet: poll its status
	CodeInsufficientStorage  Code = "insufficient_storage"   // a configured byte limit (a stream's, the catalogs' memory budget) is reached; the message names the setting
	CodeCancelled            Code = "cancelled"              // the caller gave up (SubjectCancel) before the answer; nobody reads it
	CodeQuotaExceeded        Code = "quota_exceeded"         // a tenant's quota would be exceeded; Field names the quota (413; the bridge answers the jobs quota 429)
)

// codeStatus is the one table from error codes to HTTP statuses.
var codeStatus = map[Code]int{
	CodeMalformedJSON:        http.StatusBadRequest,
	CodeInvalidRequest:       http.StatusUnprocessableEntity,
	CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	CodeUnauthorized:         http.StatusUnauthorized,
	CodeForbidden:            http.StatusForbidden,
	CodeRateLimited:          http.StatusTooManyRequests,
	CodeNotFound:             http.StatusNotFound,
	CodeConflict:             http.StatusConflict,
	CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	CodeOverloaded:           http.StatusTooManyRequests,
	CodeNoProcessor:          http.StatusServiceUnavailable,
	CodeTimeout:              http.StatusGatewayTimeout,
	CodeModelError:           http.StatusInternalServerError,
	CodeInternal:             http.StatusInternalServerError,
	CodeJobNotDone:           http.StatusConflict,
	CodeInsufficientStorage:  http.StatusInsufficientStorage,
	CodeCancelled:            499, // nginx's "client closed request": the bridge's status when its caller left
	CodeQuotaExceeded:        http.StatusRequestEntityTooLarge,
}

// HTTPStatus is the HTTP status for code; unknown codes are 500.
func (c Code) HTTPStatus() int {
	if s, ok := codeStatus[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Retryable reports whether the same request may succeed later unchanged.
func (c Code) Retryable() bool {
	return c == CodeOverloaded || c == CodeNoProcessor || c == CodeTimeout || c == CodeRateLimited
}

// Error is simmatch's error: a stable code, a message for humans and, for
// validation errors, the offending field and the limit it broke.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Field names the offending request field, e.g. "product_descriptions[3]".
	Field string `json:"field,omitempty"`
	// Limit is the limit the field broke, when there is one.
	Limit int `json:"limit,omitempty"`
	// RequestID echoes the request id, when known.
	RequestID string `json:"request_id,omitempty"`
	// RetryAfterMs is, on overloaded, the service's estimate of how long
	// until it could take the same request (the work queued ahead of it
	// draining at the measured speed). Over HTTP it is also the Retry-After
	// header, rounded up to whole seconds.
	RetryAfterMs int `json:"retry_after_ms,omitempty"`
}

// ErrorBody is the JSON body of every error answer, over NATS and HTTP.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Sentinels for errors.Is: an *Error matches the sentinel with the same code.
var (
	ErrMalformedJSON        = &Error{Code: CodeMalformedJSON}
	ErrInvalidRequest       = &Error{Code: CodeInvalidRequest}
	ErrPayloadTooLarge      = &Error{Code: CodePayloadTooLarge}
	ErrUnsupportedMediaType = &Error{Code: CodeUnsupportedMediaType}
	ErrUnauthorized         = &Error{Code: CodeUnauthorized}
	ErrForbidden            = &Error{Code: CodeForbidden}
	ErrRateLimited          = &Error{Code: CodeRateLimited}
	ErrNotFound             = &Error{Code: CodeNotFound}
	ErrConflict             = &Error{Code: CodeConflict}
	ErrOverloaded           = &Error{Code: CodeOverloaded}
	ErrNoProcessor          = &Error{Code: CodeNoProcessor}
	ErrTimeout              = &Error{Code: CodeTimeout}
	ErrModelError           = &Error{Code: CodeModelError}
	ErrInternal             = &Error{Code: CodeInternal}
	ErrJobNotDone           = &Error{Code: CodeJobNotDone}
	ErrInsufficientStorage  = &Error{Code: CodeInsufficientStorage}
	ErrQuotaExceeded        = &Error{Code: CodeQuotaExceeded}
)

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an invalid_request error naming field and, if limit > 0, the limit.
func FieldError(field string, limit int, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidRequest, Field: field, Limit: limit, Message: field + ": " + fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("simmatch: ")
	b.WriteString(string(e.Code))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is matches sentinels by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// AsError returns err as an *Error; errors that are not simmatch errors
// become CodeInternal with err's text.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// Marshal encodes e as an ErrorBody.
func (e *Error) Marshal() []byte {
	b, err := json.Marshal(ErrorBody{Error: e})
	if err != nil { // cannot happen: the struct holds only strings and ints
		return []byte(`{"error":{"code":"internal","message":"encode error"}}`)
	}
	return b
}
