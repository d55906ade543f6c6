package main

import (
	"fmt"
	"net/http"
	"time"
)

// serveBackend is the trivial backend every edge target proxies to. It runs in its own process (the suite starts
// itself with -serve-backend) so that it does not share a Go runtime with the load generator. It answers 200 and
// reflects X-User-Id, so setup can check that a middleware really let an authenticated identity through.
func serveBackend(addr string) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if u := r.Header.Get("X-User-Id"); u != "" {
			w.Header().Set("X-Seen-User-Id", u)
		}
		if r.Header.Get("Authorization") != "" {
			w.Header().Set("X-Seen-Authorization", "yes")
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		return fmt.Errorf("backend on %s: %w", addr, err)
	}
	return nil
}
