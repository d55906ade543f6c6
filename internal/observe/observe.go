// Package observe gives an HTTP server what its operators need to watch it: a request id on every request (taken
// from X-Request-Id when the edge set a sane one, made up otherwise, and echoed in the response), one log line per
// request, the request id on every log line written with the request's context, and Prometheus request metrics
// labelled by route pattern (never by raw path, query, client or user, so labels stay few and hold no secret).
package observe

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Header carries the request id between the edge, the services and the backends.
const Header = "X-Request-Id"

type ctxKey struct{}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// WithRequestID returns a context carrying id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// NewRequestID makes a random request id.
func NewRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sane accepts an incoming id only if it is short and plain, so a client cannot inject log lines or huge values.
func sane(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// NewLogger returns a logger writing to w as text ("text"), JSON ("json"), or JSON unless w is a terminal ("auto":
// containers and log collectors get JSON, people at a terminal get text). Every record logged with a context that
// carries a request id gets a request_id attribute. It logs from level info; NewLoggerAt chooses the level.
func NewLogger(format string, w io.Writer) (*slog.Logger, error) {
	return NewLoggerAt(format, slog.LevelInfo, w)
}

// NewLoggerAt is NewLogger logging from a given level (debug for streamproxy's policy decisions, say).
func NewLoggerAt(format string, level slog.Level, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "auto":
		format = "json"
		out := w
		if b, ok := out.(interface{ Unwrap() io.Writer }); ok {
			out = b.Unwrap()
		}
		if f, ok := out.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	case "text", "json":
	default:
		return nil, &formatError{format}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	ch := contextHandler{Handler: h}
	if f, ok := w.(flusher); ok {
		ch.flush = f.Flush
	}
	return slog.New(ch), nil
}

type formatError struct{ format string }

func (e *formatError) Error() string {
	return "log format " + strconv.Quote(e.format) + ": want auto, text or json"
}

// flusher is a writer that holds lines back (BatchWriter).
type flusher interface{ Flush() error }

// contextHandler adds the request id of the record's context. Over a writer that holds lines back, a warning or an
// error is passed on at once, with the lines before it: an operator sees a problem when it happens, and a crash
// right after it cannot lose it.
type contextHandler struct {
	slog.Handler
	flush func() error // nil: the writer holds nothing back
}

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	err := h.Handler.Handle(ctx, r)
	if h.flush != nil && r.Level >= slog.LevelWarn {
		if ferr := h.flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as), h.flush}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name), h.flush}
}

// Metrics are the request metrics of one server.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

// NewMetrics registers the request metrics under namespace (e.g. "authserver").
func NewMetrics(reg prometheus.Registerer, namespace string) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code."}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request (to the end of the body: long for event streams), by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"route"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "oauth_errors_total",
			Help: "OAuth error answers, by route pattern and OAuth error code."}, []string{"route", "error"}),
	}
	reg.MustRegister(m.requests, m.duration, m.errors)
	return m
}

// Outcome records the OAuth error code of an answer, for the metrics and the request's log line. Handlers call it
// with the ResponseWriter they were given; any other writer is ignored.
func Outcome(w http.ResponseWriter, errorCode string) {
	if rec, ok := w.(*recorder); ok {
		rec.outcome = errorCode
	}
}

// Handler wraps next (normally an http.ServeMux, whose matched pattern names the route) with request ids, a log
// line per request (method, route, status, duration, request id; never the query, which can carry codes), and the
// metrics (m may be nil).
func Handler(next http.Handler, log *slog.Logger, m *Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(Header)
		if !sane(id) {
			id = NewRequestID()
			r.Header.Set(Header, id)
		}
		w.Header().Set(Header, id)
		r = r.WithContext(WithRequestID(r.Context(), id))
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r) // a ServeMux sets r.Pattern on this very request
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		if m != nil {
			m.requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Inc()
			m.duration.WithLabelValues(route).Observe(elapsed.Seconds())
			if rec.outcome != "" {
				m.errors.WithLabelValues(route, rec.outcome).Inc()
			}
		}
		attrs := []any{"method", r.Method, "path", r.URL.Path, "route", route, "status", rec.status,
			"duration_ms", float64(elapsed.Microseconds()) / 1000}
		if rec.outcome != "" {
			attrs = append(attrs, "error", rec.outcome)
		}
		// An MCP session id is a handle on a user's session: log a prefix that joins lines, not the whole id.
		sid := rec.Header().Get("Mcp-Session-Id")
		if sid == "" {
			sid = r.Header.Get("Mcp-Session-Id")
		}
		if sid != "" {
			attrs = append(attrs, "session", sid[:min(8, len(sid))])
		}
		log.InfoContext(r.Context(), "request", attrs...)
	})
}

// recorder notes the status and the OAuth outcome, and keeps streaming working.
type recorder struct {
	http.ResponseWriter
	status  int
	wrote   bool
	outcome string
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Flush lets event streams through at once.
func (r *recorder) Flush() {
	r.wrote = true
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (deadlines for long streams).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
