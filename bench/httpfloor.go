package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/mcp-oauth-gateway/gateway/bench/internal/mcpclient"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/stats"
)

// targetHTTPFloor is the row of the per-call tables that no HTTP proxy can beat: one loopback round trip.
const targetHTTPFloor = "HTTP floor (Go client and server, loopback, no MCP server)"

// The floor's request and answer: a tools/call and a text result of the sizes the measured calls exchange.
const (
	floorRequest = `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m%d"}}}`
	floorAnswer  = `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"Echo: m"}]}}`
)

// measureHTTPFloor measures one loopback HTTP round trip with a JSON-RPC body, the bench's own client transport to a
// Go net/http server in this process that reads the request and answers at once: what an HTTP proxy in front of
// stdio costs at the least, before it does anything. Same calls and repetitions as the per-call latency.
func measureHTTPFloor(cfg Config) (*streamResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := "null"
		if _, rest, ok := bytes.Cut(body, []byte(`"id":`)); ok {
			if n, _, ok := bytes.Cut(rest, []byte(",")); ok {
				id = string(n)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, floorAnswer, id)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	client := &http.Client{Transport: mcpclient.NewHTTPTransport(), Timeout: 10 * time.Second}
	url := "http://" + ln.Addr().String() + "/mcp"
	call := func(seq int) error {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url,
			bytes.NewReader(fmt.Appendf(nil, floorRequest, seq, seq)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && !bytes.Contains(body, []byte(`"id":`+strconv.Itoa(seq)+`,`)) {
			err = errors.New("the floor's server answered another id")
		}
		return err
	}
	res := &streamResult{}
	for i := range warmCalls(cfg) {
		if err := call(i); err != nil {
			return nil, fmt.Errorf("HTTP floor: %w", err)
		}
	}
	for range cfg.Reps {
		lat := make([]time.Duration, 0, cfg.Calls)
		for i := range cfg.Calls {
			t0 := time.Now()
			if err := call(i); err != nil {
				return nil, fmt.Errorf("HTTP floor: %w", err)
			}
			lat = append(lat, time.Since(t0))
		}
		l := stats.Summarize(lat)
		res.p50, res.p99, res.calls = append(res.p50, stats.Ms(l.P50)), append(res.p99, stats.Ms(l.P99)), append(res.calls, len(lat))
	}
	return res, nil
}
