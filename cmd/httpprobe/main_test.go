package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready: replaying", http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	if body, err := probe(ok.URL, time.Second); err != nil || string(body) != "ok" {
		t.Fatalf("healthy endpoint: %v", err)
	}
	if _, err := probe(bad.URL, time.Second); err == nil {
		t.Fatal("a 503 passed the probe")
	}
	if _, err := probe("http://127.0.0.1:1/", time.Second); err == nil {
		t.Fatal("a closed port passed the probe")
	}
}
