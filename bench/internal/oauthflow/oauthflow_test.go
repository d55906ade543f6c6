package oauthflow

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// The consent form itself is internal/browser's (tested there); a page without an approve button ends the flow
// with an error.
func TestAuthorizeWithoutApproveButtonFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `<form><button>Deny</button></form>`)
	}))
	defer srv.Close()
	a := &AS{Issuer: srv.URL, Resource: "http://127.0.0.1:1/mcp", Scope: "mcp", HTTP: srv.Client()}
	_, err := a.Authorize(context.Background(), &Client{ID: "c"})
	require.Error(t, err)
}
