package observe

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func setup(t *testing.T) (http.Handler, *bytes.Buffer, *Metrics) {
	t.Helper()
	var logs bytes.Buffer
	log, err := NewLogger("json", &logs)
	require.NoError(t, err)
	m := NewMetrics(prometheus.NewRegistry(), "test")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handler line")
		Outcome(w, "invalid_grant")
		w.WriteHeader(http.StatusBadRequest)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, http.NewResponseController(w).Flush(), "streams can flush through the recorder")
	})
	return Handler(mux, log, m), &logs, m
}

func lines(t *testing.T, logs *bytes.Buffer) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

func TestRequestIDs(t *testing.T) {
	h, logs, _ := setup(t)
	for _, c := range []struct{ sent, want string }{
		{"edge-7f3a", "edge-7f3a"}, // the edge's id is kept
		{"", ""},                   // none: one is made
		{"bad id\nwith newline", ""},
		{strings.Repeat("x", 200), ""},
	} {
		logs.Reset()
		req := httptest.NewRequest(http.MethodPost, "/token?code=SECRET", nil)
		if c.sent != "" {
			req.Header.Set(Header, c.sent)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get(Header)
		if c.want != "" {
			assert.Equal(t, c.want, got)
		} else {
			assert.Regexp(t, `^[A-Za-z0-9_-]{16}$`, got, "a fresh id replaces %q", c.sent)
		}
		ls := lines(t, logs)
		require.Len(t, ls, 2)
		assert.Equal(t, "handler line", ls[0]["msg"])
		assert.Equal(t, got, ls[0]["request_id"], "lines logged with the request's context carry its id")
		assert.Equal(t, got, ls[1]["request_id"])
		assert.Equal(t, "POST /token", ls[1]["route"])
		assert.Equal(t, float64(400), ls[1]["status"])
		assert.Equal(t, "invalid_grant", ls[1]["error"])
		assert.NotContains(t, logs.String(), "SECRET", "the query is never logged")
	}
}

func TestMetricsByRoute(t *testing.T) {
	h, _, m := setup(t)
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/token", nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/stream", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/nowhere/abc123", nil))
	assert.Equal(t, 3.0, testutil.ToFloat64(m.requests.WithLabelValues("POST /token", "POST", "400")))
	assert.Equal(t, 3.0, testutil.ToFloat64(m.errors.WithLabelValues("POST /token", "invalid_grant")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("GET /stream", "GET", "200")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("unmatched", "GET", "404")),
		"unknown paths share one label value, so a scan cannot blow up the series count")
}

func TestLogFormat(t *testing.T) {
	var b bytes.Buffer
	log, err := NewLogger("auto", &b) // not a terminal: JSON
	require.NoError(t, err)
	log.Info("hello")
	assert.True(t, json.Valid(b.Bytes()), b.String())
	_, err = NewLogger("yaml", &b)
	assert.ErrorContains(t, err, "want auto, text or json")
}

func TestLogLevel(t *testing.T) {
	var b bytes.Buffer
	log, err := NewLogger("text", &b)
	require.NoError(t, err)
	log.Debug("quiet")
	assert.Empty(t, b.String(), "info and up by default")
	log, err = NewLoggerAt("text", slog.LevelDebug, &b)
	require.NoError(t, err)
	log.Debug("heard")
	assert.Contains(t, b.String(), "msg=heard")
}
