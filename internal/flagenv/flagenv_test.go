package flagenv

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplit(t *testing.T) {
	assert.Equal(t, []string{"a", "b c", "d"}, Split(" a, b c,,d ,"))
	assert.Nil(t, Split(" , "))
}

func TestApply(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", "default", "")
	issuer := fs.String("issuer", "", "")
	old := fs.String("github-client-id", "", "")
	var hosts List
	fs.Var(&hosts, "allowed-hosts", "")
	t.Setenv("X_LISTEN", "from-env")
	t.Setenv("X_ISSUER", "from-env")
	t.Setenv("GITHUB_CLIENT_ID", "from-alias")
	t.Setenv("X_ALLOWED_HOSTS", "a, b")
	require.NoError(t, fs.Parse([]string{"--issuer", "from-flag"}))
	require.NoError(t, Apply(fs, "X", map[string]string{"github-client-id": "GITHUB_CLIENT_ID"}))
	assert.Equal(t, "from-env", *listen)
	assert.Equal(t, "from-flag", *issuer, "the command line wins")
	assert.Equal(t, "from-alias", *old)
	assert.Equal(t, List{"a", "b"}, hosts)

	n := fs.Int("port", 0, "")
	t.Setenv("X_PORT", "many")
	assert.ErrorContains(t, Apply(fs, "X", nil), "X_PORT")
	assert.Zero(t, *n)
	assert.Equal(t, "X_METRICS_LISTEN", Name("X", "metrics-listen"))
}
