package contracts_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

func TestCodeHTTPStatusAndRetryable(t *testing.T) {
	tests := []struct {
		code      contracts.Code
		status    int
		retryable bool
	}{
		{contracts.CodeMalformedJSON, http.StatusBadRequest, false},
		{contracts.CodeInvalidRequest, http.StatusUnprocessableEntity, false},
		{contracts.CodePayloadTooLarge, http.StatusRequestEntityTooLarge, false},
		{contracts.CodeUnsupportedMediaType, http.StatusUnsupportedMediaType, false},
		{contracts.CodeUnauthorized, http.StatusUnauthorized, false},
		{contracts.CodeForbidden, http.StatusForbidden, false},
		{contracts.CodeRateLimited, http.StatusTooManyRequests, true},
		{contracts.CodeNotFound, http.StatusNotFound, false},
		{contracts.CodeMethodNotAllowed, http.StatusMethodNotAllowed, false},
		{contracts.CodeOverloaded, http.StatusTooManyRequests, true},
		{contracts.CodeNoProcessor, http.StatusServiceUnavailable, true},
		{contracts.CodeTimeout, http.StatusGatewayTimeout, true},
		{contracts.CodeModelError, http.StatusInternalServerError, false},
		{contracts.CodeInternal, http.StatusInternalServerError, false},
		{contracts.CodeInsufficientStorage, http.StatusInsufficientStorage, false},
		{contracts.CodeQuotaExceeded, http.StatusRequestEntityTooLarge, false},
		{"", http.StatusInternalServerError, false},
		{"no_such_code", http.StatusInternalServerError, false},
		{"503", http.StatusInternalServerError, false}, // a foreign micro service's numeric code
	}
	for _, tc := range tests {
		t.Run(string(tc.code), func(t *testing.T) {
			if got := tc.code.HTTPStatus(); got != tc.status {
				t.Errorf("HTTPStatus() = %d, want %d", got, tc.status)
			}
			if got := tc.code.Retryable(); got != tc.retryable {
				t.Errorf("Retryable() = %v, want %v", got, tc.retryable)
			}
		})
	}
}

func TestSentinels(t *testing.T) {
	seen := map[contracts.Code]bool{}
	for _, s := range allSentinels {
		t.Run(string(s.Code), func(t *testing.T) {
			if s.Code == "" || seen[s.Code] {
				t.Fatalf("sentinel code %q is empty or repeated", s.Code)
			}
			seen[s.Code] = true
			e := contracts.Errorf(s.Code, "boom %d", 1)
			wrapped := fmt.Errorf("caller: %w", e)
			if !errors.Is(wrapped, s) {
				t.Errorf("errors.Is(%v, sentinel %q) = false", wrapped, s.Code)
			}
			for _, other := range allSentinels {
				if other != s && errors.Is(wrapped, other) {
					t.Errorf("%v matches sentinel %q", wrapped, other.Code)
				}
			}
		})
	}
	var internal error = &contracts.Error{Code: contracts.CodeInternal}
	if errors.Is(internal, errors.New("simmatch: internal")) {
		t.Error("an *Error must not match a plain error with the same text")
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  *contracts.Error
		want string
	}{
		{"code only", &contracts.Error{Code: contracts.CodeTimeout}, "simmatch: timeout"},
		{"Errorf", contracts.Errorf(contracts.CodeModelError, "run session: %s", "oom"), "simmatch: model_error: run session: oom"},
		{"FieldError", contracts.FieldError("query[2]", 8192, "has %d characters", 9000), "simmatch: invalid_request: query[2]: has 9000 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
	fe := contracts.FieldError("query[2]", 8192, "x")
	if fe.Code != contracts.CodeInvalidRequest || fe.Field != "query[2]" || fe.Limit != 8192 {
		t.Errorf("FieldError = %+v", fe)
	}
}

func TestAsError(t *testing.T) {
	simm := contracts.FieldError("top_k", 0, "bad")
	tests := []struct {
		name string
		err  error
		want *contracts.Error
		same bool // want the very same *Error back
	}{
		{name: "nil", err: nil, want: nil},
		{name: "plain error", err: errors.New("boom"), want: &contracts.Error{Code: contracts.CodeInternal, Message: "boom"}},
		{name: "wrapped plain error", err: fmt.Errorf("a: %w", errors.New("b")), want: &contracts.Error{Code: contracts.CodeInternal, Message: "a: b"}},
		{name: "*Error", err: simm, want: simm, same: true},
		{name: "wrapped *Error", err: fmt.Errorf("bridge: %w", simm), want: simm, same: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := contracts.AsError(tc.err)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("AsError(%v) = %+v, want %+v", tc.err, got, tc.want)
			}
			if tc.same && got != tc.want {
				t.Errorf("AsError returned a copy, want the wrapped *Error itself")
			}
		})
	}
}

func TestErrorMarshal(t *testing.T) {
	tests := []struct {
		name string
		err  *contracts.Error
		want map[string]any
	}{
		{
			name: "every field",
			err:  &contracts.Error{Code: contracts.CodeInvalidRequest, Message: "m", Field: "query", Limit: 32, RequestID: "r"},
			want: map[string]any{"code": "invalid_request", "message": "m", "field": "query", "limit": 32.0, "request_id": "r"},
		},
		{
			name: "optional fields omitted",
			err:  &contracts.Error{Code: contracts.CodeOverloaded, Message: "queue full"},
			want: map[string]any{"code": "overloaded", "message": "queue full"},
		},
		{
			name: "message always present",
			err:  &contracts.Error{Code: contracts.CodeTimeout},
			want: map[string]any{"code": "timeout", "message": ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.err.Marshal()
			var body map[string]map[string]any
			if err := json.Unmarshal(data, &body); err != nil {
				t.Fatalf("Marshal() = %s: %v", data, err)
			}
			if len(body) != 1 || !reflect.DeepEqual(body["error"], tc.want) {
				t.Errorf("Marshal() = %s, want {\"error\": %v}", data, tc.want)
			}
			var back contracts.ErrorBody
			if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back.Error, tc.err) {
				t.Errorf("ErrorBody round trip = %+v, %v; want %+v", back.Error, err, tc.err)
			}
		})
	}
}
