package browser

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A consent page of another shape than ours: other field names, a box ticked already, one not.
const consentPage = `<!doctype html><html><body>
<form method="post" action="/consent">
  <input type="hidden" name="csrf_token" value="tok123">
  <input type="hidden" name="request_id" value="req9">
  <input type="checkbox" name="remember" value="1" checked>
  <input type="checkbox" name="spam" value="1">
  <button type="submit" name="decision" value="deny">Deny</button>
  <button type="submit" name="decision" value="approve">Approve</button>
</form></body></html>`

// site serves page at /authorize and records the form posted to /consent, answering with a redirect to the client.
func site(t *testing.T, page string) (*httptest.Server, *url.Values, *http.Header) {
	var form url.Values
	var header http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/authorize":
			_, _ = io.WriteString(w, page)
		case "/consent":
			require.NoError(t, r.ParseForm())
			form, header = r.PostForm, r.Header.Clone()
			http.Redirect(w, r, "http://127.0.0.1:3000/callback?code=c1", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &form, &header
}

func TestRunSubmitsTheApproveButton(t *testing.T) {
	srv, form, header := site(t, consentPage)
	b := New(nil)
	b.Action, b.StopAt = "approve", []string{"http://127.0.0.1:3000/callback"}
	res, err := b.Run(context.Background(), srv.URL+"/authorize?x=1")
	require.NoError(t, err)
	require.NotNil(t, res.Location, "%d %s", res.Status, res.Page)
	assert.Equal(t, "c1", res.Location.Query().Get("code"))
	assert.Equal(t, consentPage, res.Consent)
	assert.Equal(t, "approve", form.Get("decision"))
	assert.Equal(t, "tok123", form.Get("csrf_token"))
	assert.Equal(t, "req9", form.Get("request_id"))
	assert.Equal(t, "1", form.Get("remember"))
	assert.Empty(t, form.Get("spam"), "an unchecked box is not sent")
	assert.Equal(t, srv.URL, header.Get("Origin"))
	assert.Equal(t, []Visit{{"GET", srv.URL + "/authorize?x=1", 200}, {"POST", srv.URL + "/consent", 302}}, res.Visits)
}

func TestRunWithoutTheActionButtonFails(t *testing.T) {
	srv, _, _ := site(t, consentPage)
	b := New(nil)
	b.Action = "maybe"
	_, err := b.Run(context.Background(), srv.URL+"/authorize")
	require.Error(t, err)
}

func TestRunEndsOnAPageWithNothingToDo(t *testing.T) {
	srv, _, _ := site(t, `<form><button>Deny</button></form>`)
	b := New(nil)
	b.Action = "approve"
	res, err := b.Run(context.Background(), srv.URL+"/authorize")
	require.NoError(t, err)
	assert.Nil(t, res.Location)
	assert.Empty(t, res.Consent, "a form without an approve button is no consent page")
	assert.Equal(t, `<form><button>Deny</button></form>`, res.Page)
}
