package mcpclient

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// When the test binary runs as a stdio server (TestMain), it answers server/discover with the versions in
// MCPCLIENT_VERSIONS and a tools/call with the params._meta it got, as text.
func TestMain(m *testing.M) {
	if versions := os.Getenv("MCPCLIENT_VERSIONS"); versions != "" {
		serveStdio(versions)
		return
	}
	os.Exit(m.Run())
}

func serveStdio(versions string) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Meta json.RawMessage `json:"_meta"`
			} `json:"params"`
		}
		if json.Unmarshal(sc.Bytes(), &req) != nil || req.ID == nil {
			continue
		}
		result := `{"supportedVersions":` + versions + `}`
		if req.Method == "tools/call" {
			text, _ := json.Marshal(string(req.Params.Meta))
			result = `{"resultType":"complete","content":[{"type":"text","text":` + string(text) + `}]}`
		}
		fmt.Printf(`{"jsonrpc":"2.0","id":%s,"result":%s}`+"\n", req.ID, result)
	}
}

func stdioServer(versions string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "MCPCLIENT_VERSIONS="+versions)
	return cmd
}

// Over stdio in 2026-07-28 the client opens with server/discover and sends the request metadata in every request,
// as a proxy that speaks 2026-07-28 to its child does.
func TestStdioStateless(t *testing.T) {
	ctx := context.Background()
	s, err := OpenStdioStateless(ctx, stdioServer(`["2026-07-28","2025-11-25"]`))
	require.NoError(t, err)
	defer s.Close()
	text, err := CallTool(ctx, s, "t", nil)
	require.NoError(t, err)
	assert.JSONEq(t, string(requestMeta), text)

	_, err = OpenStdioStateless(ctx, stdioServer(`["2025-11-25"]`))
	assert.ErrorContains(t, err, "does not support 2026-07-28")
}
