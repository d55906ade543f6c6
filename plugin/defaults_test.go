package plugin

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocumentedDefaults holds docs/plugin.md's configuration table to the defaults the code applies, so that the
// defaults are stated once in code (config.go) and the page cannot drift from them.
func TestDocumentedDefaults(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "plugin.md"))
	require.NoError(t, err)
	documented := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Za-z.]+)` \\| ([^|]+) \\|").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = strings.TrimSpace(m[2])
	}
	require.NotEmpty(t, documented, "no configuration table found in docs/plugin.md")

	c := CreateConfig()
	c.Issuer, c.Resource = "https://auth.example.com", "https://mcp.example.com/mcp"
	s, err := parseConfig(c)
	require.NoError(t, err)

	dur := func(d time.Duration) string { // 5m0s as the page writes it: 5m
		v := d.String()
		if strings.HasSuffix(v, "m0s") {
			v = strings.TrimSuffix(v, "0s")
		}
		return "`" + v + "`"
	}
	want := map[string]string{
		"clockSkew":                dur(s.skew),
		"maxTokenBytes":            "`" + strconv.Itoa(s.maxTokenBytes) + "`",
		"jwksRefreshInterval":      dur(s.jwksRefresh),
		"jwksMinRefreshInterval":   dur(s.jwksMinRefresh),
		"fetchTimeout":             dur(s.fetchTimeout),
		"revocationPollInterval":   "feed's `poll_interval`, else " + dur(defaultFeedPoll),
		"scopes":                   "`" + strings.Join(s.scopes, ",") + "`",
		"algorithms":               "`" + strings.Join(defaultAlgorithms, ",") + "`",
		"keepAuthorization":        "`" + strconv.FormatBool(s.keepAuth) + "`",
		"headers.userId":           "`" + s.headers[0] + "`",
		"headers.userName":         "`" + s.headers[1] + "`",
		"headers.userEmail":        "`" + s.headers[2] + "`",
		"headers.clientId":         "`" + s.headers[3] + "`",
		"headers.scopes":           "`" + s.headers[4] + "`",
		"headers.userGroups":       "`" + s.headers[5] + "`",
		"headers.resourceMetadata": "`" + s.headers[6] + "`",
	}
	for option, v := range want {
		assert.Equal(t, v, documented[option], "docs/plugin.md's default of %s", option)
	}
	assert.Zero(t, s.revocationPoll, "an empty revocationPollInterval follows the feed")
	assert.Zero(t, s.revocationMaxLag, "revocationMaxLag is off by default")
	assert.Zero(t, s.cacheSize, "cacheSize is unset by default")
}
