package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.Write([]byte(`{"status":"ok"}`))
			return
		}
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	if err := check(srv.URL+"/health", time.Second); err != nil {
		t.Errorf("healthy endpoint: %v", err)
	}
	if err := check(srv.URL+"/ready", time.Second); err == nil {
		t.Error("503: want an error")
	}
	addr := srv.Listener.Addr().String()
	srv.Close()
	if err := check("http://"+addr+"/health", time.Second); err == nil {
		t.Error("closed listener: want an error")
	}
}
