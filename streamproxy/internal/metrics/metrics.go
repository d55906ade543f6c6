// Package metrics counts what streamproxy does, for Prometheus: children started, running, exited and crashed,
// messages relayed, sessions refused and expired, the policy's decisions, rate limits and reloads. Labels take values
// from small fixed sets (a policy's rule names are the operator's, from its file); a nil *Metrics counts nothing.
// Request counts and latencies come from package observe, active sessions from a gauge on the handler.
package metrics

import "github.com/prometheus/client_golang/prometheus"

// Metrics are streamproxy's own counters.
type Metrics struct {
	started  prometheus.Counter
	running  prometheus.Gauge
	exits    *prometheus.CounterVec
	messages *prometheus.CounterVec
	refused  *prometheus.CounterVec
	expired  prometheus.Counter
	limited  *prometheus.CounterVec

	poolReady  prometheus.Gauge
	poolMisses prometheus.Counter

	starting      prometheus.Gauge
	startsWaiting prometheus.Gauge

	decisions     *prometheus.CounterVec
	policyLimited *prometheus.CounterVec
	reloads       *prometheus.CounterVec
}

// New registers the counters.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "streamproxy", Name: "children_started_total",
			Help: "MCP server processes started (one per session)."}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "streamproxy", Name: "children_running",
			Help: "MCP server processes running now."}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamproxy", Name: "children_exited_total",
			Help: "MCP server processes that exited, by how: ended (the session was over) or crashed (it exited by itself while its session was open)."},
			[]string{"how"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamproxy", Name: "messages_total",
			Help: "JSON-RPC messages relayed, by direction: to_server (client to MCP server) or to_client."}, []string{"direction"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamproxy", Name: "sessions_refused_total",
			Help: "Sessions and workers refused, by reason: limit (--max-sessions reached), user_limit (--max-per-user reached), start_wait (waited too long for a start under --max-starting), start_failed, broker (no upstream token from the authserver's broker), shutting_down."}, []string{"reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "streamproxy", Name: "sessions_expired_total",
			Help: "Sessions ended for being idle longer than --idle-timeout."}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamproxy", Name: "requests_limited_total",
			Help: "Requests refused with 429 for their user's share, by limit: user_streams (--max-streams-per-user), user_calls (--max-calls-per-user)."}, []string{"limit"}),
		poolReady: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "streamproxy", Name: "pool_ready",
			Help: "MCP server processes started ahead (--pool) and waiting for a new session or 2026-07-28 user."}),
		poolMisses: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "streamproxy", Name: "pool_misses_total",
			Help: "New sessions and 2026-07-28 users' processes that found the pool (--pool) empty and waited for a fresh process."}),
		starting: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "streamproxy", Name: "processes_starting",
			Help: "MCP server processes starting now: spawned, not yet answered their first request (at most --max-starting)."}),
		startsWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "streamproxy", Name: "starts_waiting",
			Help: "Process starts waiting for their turn under --max-starting: new sessions, 2026-07-28 users' workers, shared processes' restarts and the pool's refills."}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamproxy", Name: "policy_decisions_total",
			Help: "Requests the policy decided (tools/call, prompts/get, resources/read and the subscriptions), by the rule that decided (\"default\" when none matched) and effect: allow, deny, step_up."},
			[]string{"rule", "effect"}),
		policyLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamproxy", Name: "policy_limited_total",
			Help: "Requests refused with 429 by a rate limit of the policy, by the limit's name."}, []string{"rule"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamproxy", Name: "policy_reloads_total",
			Help: "Changes of the policy file, by result: loaded, or failed (the last good policy stays in force)."}, []string{"result"}),
	}
	reg.MustRegister(m.started, m.running, m.exits, m.messages, m.refused, m.expired, m.limited, m.poolReady, m.poolMisses, m.starting, m.startsWaiting, m.decisions, m.policyLimited, m.reloads)
	// Every series exists from the start at 0, so rates and alerts work before the first event.
	for _, how := range []string{"ended", "crashed"} {
		m.exits.WithLabelValues(how)
	}
	for _, d := range []string{"to_server", "to_client"} {
		m.messages.WithLabelValues(d)
	}
	for _, r := range []string{"limit", "user_limit", "start_wait", "start_failed", "broker", "shutting_down"} {
		m.refused.WithLabelValues(r)
	}
	for _, l := range []string{"user_streams", "user_calls"} {
		m.limited.WithLabelValues(l)
	}
	for _, r := range []string{"loaded", "failed"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

// ChildStarted counts a child process started.
func (m *Metrics) ChildStarted() {
	if m != nil {
		m.started.Inc()
		m.running.Inc()
	}
}

// ChildExited counts a child process gone; crashed means its session was still open.
func (m *Metrics) ChildExited(crashed bool) {
	if m != nil {
		m.running.Dec()
		how := "ended"
		if crashed {
			how = "crashed"
		}
		m.exits.WithLabelValues(how).Inc()
	}
}

// Message counts one relayed message.
func (m *Metrics) Message(direction string) {
	if m != nil {
		m.messages.WithLabelValues(direction).Inc()
	}
}

// Refused counts a session that could not be opened.
func (m *Metrics) Refused(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

// Expired counts a session ended for idleness.
func (m *Metrics) Expired() {
	if m != nil {
		m.expired.Inc()
	}
}

// Limited counts a request refused for its user's share of streams or requests in flight.
func (m *Metrics) Limited(limit string) {
	if m != nil {
		m.limited.WithLabelValues(limit).Inc()
	}
}

// PoolReady sets how many started processes wait in the pool.
func (m *Metrics) PoolReady(n int) {
	if m != nil {
		m.poolReady.Set(float64(n))
	}
}

// PoolMiss counts a new process that found the pool empty.
func (m *Metrics) PoolMiss() {
	if m != nil {
		m.poolMisses.Inc()
	}
}

// Starting sets how many processes are starting now.
func (m *Metrics) Starting(n int) {
	if m != nil {
		m.starting.Set(float64(n))
	}
}

// StartsWaiting sets how many starts wait for their turn.
func (m *Metrics) StartsWaiting(n int) {
	if m != nil {
		m.startsWaiting.Set(float64(n))
	}
}

// PolicyDecision counts a request the policy decided, by the rule that decided and the effect.
func (m *Metrics) PolicyDecision(rule, effect string) {
	if m != nil {
		m.decisions.WithLabelValues(rule, effect).Inc()
	}
}

// PolicyLimited counts a request refused by one of the policy's rate limits.
func (m *Metrics) PolicyLimited(rule string) {
	if m != nil {
		m.policyLimited.WithLabelValues(rule).Inc()
	}
}

// PolicyReload counts a change of the policy file, loaded or not.
func (m *Metrics) PolicyReload(ok bool) {
	if m != nil {
		result := "loaded"
		if !ok {
			result = "failed"
		}
		m.reloads.WithLabelValues(result).Inc()
	}
}
