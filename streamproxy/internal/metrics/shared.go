package metrics

import "github.com/prometheus/client_golang/prometheus"

// Shared counts what the shared MCP server processes (--share) could not hand to exactly one caller; a nil *Shared
// counts nothing. How many shared processes run is a gauge on the handler.
type Shared struct {
	unrouted *prometheus.CounterVec
	shed     prometheus.Counter
}

// NewShared registers the counters of shared processes.
func NewShared(reg prometheus.Registerer) *Shared {
	m := &Shared{unrouted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamproxy", Name: "shared_unrouted_total",
		Help: "Messages of a shared MCP server process that could not be tied to exactly one caller's request, by kind: request (a server-to-client request, answered with an error to the server) or log (a log message, dropped)."},
		[]string{"kind"}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "streamproxy", Name: "shared_shed_total",
			Help: "Calls refused at once (503 with Retry-After) because every shared MCP server process had --share-max-calls calls in flight."})}
	reg.MustRegister(m.unrouted, m.shed)
	for _, k := range []string{"request", "log"} {
		m.unrouted.WithLabelValues(k)
	}
	return m
}

// Unrouted counts a message of a shared process that no single caller could be given.
func (m *Shared) Unrouted(kind string) {
	if m != nil {
		m.unrouted.WithLabelValues(kind).Inc()
	}
}

// Shed counts a call refused because every shared process was at its limit of calls in flight.
func (m *Shared) Shed() {
	if m != nil {
		m.shed.Inc()
	}
}
