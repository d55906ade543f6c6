package oauth

import (
	"html/template"
	"net/http"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// An authorization request ends one of four ways, decided once, here: a client's request sends the browser back to
// the client's redirect URI (a code, or an error), a device's request (RFC 8628) records the user's decision on
// its device grant and ends on a page of ours, a connect request goes on to the upstream (connect.go), and an
// account-page login opens the page's session (account.go). The login, the chooser and the consent page do not ask which.
type ending interface {
	// approved: the user approved (on the consent page, or before, for these scopes and this resource).
	approved(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest)
	// denied: the user denied on the consent page.
	denied(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest)
	// cancelled: the user cancelled at the identity provider named display.
	cancelled(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, display string)
	// notAllowed: the identity provider named display vouched for a user the access rules refuse, for reason.
	notAllowed(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, display, reason string)
	// mayRemember reports whether an approval may be remembered for next time.
	mayRemember() bool
}

// forDevice reports whether ar approves a device grant rather than a client's redirect.
func forDevice(ar *store.AuthRequest) bool { return ar.DeviceUserCode != "" }

// forClient reports whether ar authorizes a client or device (rather than connecting an upstream account or logging
// in to the account page, which end once the user has logged in: there is no consent page of ours).
func forClient(ar *store.AuthRequest) bool { return ar.Connect == nil && !ar.Account }

// endingOf is the one place that tells the kinds of request apart.
func (s *Server) endingOf(ar *store.AuthRequest) ending {
	switch {
	case ar.Connect != nil:
		return connectEnding{s}
	case ar.Account:
		return accountEnding{s}
	}
	if forDevice(ar) {
		return deviceEnding{s}
	}
	return clientEnding{s}
}

// clientEnding ends a client's request at its redirect URI.
type clientEnding struct{ s *Server }

func (e clientEnding) approved(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	e.s.issueCode(w, r, ar)
}

func (e clientEnding) denied(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	e.s.finishWithError(w, r, ar, "access_denied", "the user denied the request")
}

func (e clientEnding) cancelled(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, display string) {
	e.s.finishWithError(w, r, ar, "access_denied", "the user did not authorize the login at "+display)
}

// notAllowed shows why (the client cannot), with a link that takes the error back to the client.
func (e clientEnding) notAllowed(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, display, reason string) {
	_ = e.s.store.DeleteAuthRequest(r.Context(), ar.ID)
	e.s.render(w, http.StatusForbidden, deniedPage, map[string]any{
		"Reason": reason, "Provider": display,
		"Back": template.URL(withParams(ar.RedirectURI, e.s.errorParams(ar.State, "access_denied", "the user is not allowed to use this server"))),
	})
}

func (clientEnding) mayRemember() bool { return true }

// deviceEnding decides a device grant; the device learns the answer at its next poll of /token.
type deviceEnding struct{ s *Server }

func (e deviceEnding) approved(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	e.s.finishDevice(w, r, ar, true)
}

func (e deviceEnding) denied(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	e.s.finishDevice(w, r, ar, false)
}

// cancelled leaves the device grant pending: the user may enter the code again.
func (e deviceEnding) cancelled(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, display string) {
	_ = e.s.store.DeleteAuthRequest(r.Context(), ar.ID)
	e.s.errorPage(w, http.StatusForbidden, "Login cancelled", "The "+display+" login was cancelled. Enter the code again to retry.")
}

func (e deviceEnding) notAllowed(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, _, _ string) {
	e.s.finishDevice(w, r, ar, false)
}

// mayRemember: never, since the consent page is what tells the user which device they let in (RFC 8628 §5.4).
func (deviceEnding) mayRemember() bool { return false }
