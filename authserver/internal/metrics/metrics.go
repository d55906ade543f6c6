// Package metrics counts what the authorization server does, for Prometheus: registrations, logins, tokens issued,
// grants revoked, store errors. Labels take values from small fixed sets (grant types, outcomes, reasons), never
// client ids, user ids or tokens. A nil *Metrics counts nothing, so code and tests need not care whether metrics are on.
package metrics

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the authorization server's own counters (request counts and latencies come from package observe).
type Metrics struct {
	registrations *prometheus.CounterVec
	logins        *prometheus.CounterVec
	issued        *prometheus.CounterVec
	revoked       *prometheus.CounterVec
	graceReuses   prometheus.Counter
	storeErrors   prometheus.Counter
}

// New registers the counters.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "authserver", Name: "client_registrations_total",
			Help: "Dynamic client registrations (RFC 7591), by outcome: registered, refused, rate_limited."}, []string{"outcome"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "authserver", Name: "logins_total",
			Help: "GitHub logins, by outcome: allowed, denied (not on the allow list), failed (GitHub error or bad callback)."}, []string{"outcome"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "authserver", Name: "tokens_issued_total",
			Help: "Access tokens issued, by grant type: authorization_code, refresh_token, device_code."}, []string{"grant_type"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "authserver", Name: "revocations_total",
			Help: "Revocations, by reason: revoke_endpoint, code_reused, refresh_replayed, client_deleted, admin_client, admin_user " +
				"(an operator's revoke or delete through the running server)."}, []string{"reason"}),
		graceReuses: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "authserver", Name: "refresh_grace_reuses_total",
			Help: "Refresh tokens presented again within the reuse window and answered with the successor their rotation " +
				"issued (a repeat after it is a replay: revocations_total reason refresh_replayed)."}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "authserver", Name: "store_errors_total",
			Help: "Requests that failed because the store was unavailable (the log line names the operation)."}),
	}
	reg.MustRegister(m.registrations, m.logins, m.issued, m.revoked, m.graceReuses, m.storeErrors)
	// Every series exists from the start at 0, so rates and alerts work before the first event.
	for _, o := range []string{"registered", "refused", "rate_limited"} {
		m.registrations.WithLabelValues(o)
	}
	for _, o := range []string{"allowed", "denied", "failed"} {
		m.logins.WithLabelValues(o)
	}
	for _, g := range []string{"authorization_code", "refresh_token", "device_code"} {
		m.issued.WithLabelValues(g)
	}
	for _, r := range []string{"revoke_endpoint", "code_reused", "refresh_replayed", "client_deleted", "admin_client", "admin_user"} {
		m.revoked.WithLabelValues(r)
	}
	return m
}

// Registration counts a registration attempt's outcome.
func (m *Metrics) Registration(outcome string) {
	if m != nil {
		m.registrations.WithLabelValues(outcome).Inc()
	}
}

// Login counts a GitHub login's outcome.
func (m *Metrics) Login(outcome string) {
	if m != nil {
		m.logins.WithLabelValues(outcome).Inc()
	}
}

// Issued counts an access token issued by a grant type.
func (m *Metrics) Issued(grantType string) {
	if m != nil {
		m.issued.WithLabelValues(grantType).Inc()
	}
}

// Revoked counts a revocation.
func (m *Metrics) Revoked(reason string) {
	if m != nil {
		m.revoked.WithLabelValues(reason).Inc()
	}
}

// RefreshGraceReuse counts a refresh token answered with its successor within the reuse window.
func (m *Metrics) RefreshGraceReuse() {
	if m != nil {
		m.graceReuses.Inc()
	}
}

// StoreError counts a store failure seen by a request.
func (m *Metrics) StoreError() {
	if m != nil {
		m.storeErrors.Inc()
	}
}
