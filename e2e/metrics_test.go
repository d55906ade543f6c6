package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// scrape reads a Prometheus endpoint the way Prometheus does.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// value sums the samples of a counter or gauge whose labels include every given name=value pair.
func (s scrape) value(name string, labels ...string) float64 {
	f := s[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// labelValues lists every label value of every metric, to check that none holds an id or a secret.
func (s scrape) labelValues() []string {
	var out []string
	for _, f := range s {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				out = append(out, l.GetName()+"="+l.GetValue())
			}
		}
	}
	return out
}

func (s scrape) String() string {
	var b strings.Builder
	for name := range s {
		b.WriteString(name + "\n")
	}
	return b.String()
}

var metricName = regexp.MustCompile(`\b((?:authserver|streamproxy)_[a-z_]+)`)

// checkDashboard fails if docs/grafana-dashboard.json queries a metric that no service exports.
func checkDashboard(t *testing.T, scrapes ...scrape) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "grafana-dashboard.json"))
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	n := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, m := range metricName.FindAllString(target.Expr, -1) {
				n++
				name := strings.TrimSuffix(m, "_bucket")
				found := false
				for _, s := range scrapes {
					found = found || s[name] != nil
				}
				assert.True(t, found, "dashboard panel %q queries %s, which no service exports", p.Title, m)
			}
		}
	}
	assert.Greater(t, n, 15, "the dashboard queries the gateway's metrics")
}
