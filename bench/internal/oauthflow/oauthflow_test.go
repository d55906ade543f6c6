package oauthflow

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const consentPage = `<!doctype html><html><body>
<form method="post" action="/consent">
  <input type="hidden" name="csrf_token" value="tok123">
  <input type="hidden" name="request_id" value="req9">
  <input type="checkbox" name="remember" value="1" checked>
  <input type="checkbox" name="spam" value="1">
  <button type="submit" name="decision" value="deny">Deny</button>
  <button type="submit" name="decision" value="approve">Approve</button>
</form></body></html>`

func TestApproveFormSubmitsTheApproveButton(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:8080/authorize?x=1")
	req, err := approveForm(context.Background(), base, []byte(consentPage))
	require.NoError(t, err)
	assert.Equal(t, http.MethodPost, req.Method)
	assert.Equal(t, "http://127.0.0.1:8080/consent", req.URL.String())
	b, _ := io.ReadAll(req.Body)
	form, err := url.ParseQuery(string(b))
	require.NoError(t, err)
	assert.Equal(t, "approve", form.Get("decision"))
	assert.Equal(t, "tok123", form.Get("csrf_token"))
	assert.Equal(t, "req9", form.Get("request_id"))
	assert.Equal(t, "1", form.Get("remember"))
	assert.Empty(t, form.Get("spam"), "an unchecked box is not sent")
}

func TestApproveFormWithoutApproveButtonFails(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:8080/")
	_, err := approveForm(context.Background(), base, []byte(`<form><button>Deny</button></form>`))
	require.Error(t, err)
}
