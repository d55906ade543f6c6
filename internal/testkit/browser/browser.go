// Package browser plays a user's browser through the gateway's pages, for the tests, the benchmark and the client
// profiles: it keeps cookies, follows redirects one at a time, picks an identity provider on the sign-in chooser,
// confirms a device's code, and answers the consent page. The identity providers of the tests (internal/fakegithub,
// internal/hydratest) let their user in by redirects alone, so nothing else is needed to get from /authorize (or a
// device's verification link) to the redirect back to the client (or the device's last page).
package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/net/html"
)

// Browser is one user's browser. Set the fields before Run.
type Browser struct {
	// Choose names the identity provider to pick on the sign-in chooser (its "Continue with <Choose>" link); empty:
	// the run ends on the chooser.
	Choose string
	// Action answers the consent page with its button: "approve" or "deny"; empty: the run ends on the consent page.
	Action string
	// Remember answers the consent page with remember=1, as its "remember this decision" box does; also when the page
	// offers no box (the server must then ignore it).
	Remember bool
	// StopAt ends the run at a redirect to a URL with one of these prefixes (the client's redirect URI): it is
	// returned, not followed.
	StopAt []string
	// Within, when set, ends the run too at a redirect to a URL under none of these prefixes.
	Within []string

	c *http.Client
}

// New returns a browser that sends its requests through base's transport and keeps cookies in base's jar (a new
// one when base has none). base may be nil.
func New(base *http.Client) *Browser {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if base != nil {
		c.Transport, c.Jar, c.Timeout = base.Transport, base.Jar, base.Timeout
	}
	if c.Jar == nil {
		c.Jar, _ = cookiejar.New(nil)
	}
	return &Browser{c: c}
}

// Visit is one request the browser made.
type Visit struct {
	Method, URL string
	Status      int
}

// Result is where a run ended.
type Result struct {
	Status   int      // of the last response
	Location *url.URL // the redirect that ended the run; nil when it ended on a page
	Page     string   // the page it ended on
	Consent  string   // the consent page as the user saw it (HTML), when there was one
	UserCode string   // the code the device form was confirmed with, when there was one
	Visits   []Visit
}

// maxSteps bounds a run: a login is a handful of redirects and at most three forms.
const maxSteps = 25

// Run opens start and goes on like the user: it follows redirects (but those StopAt and Within end the run), picks
// Choose on the chooser, confirms a device form once, and answers the consent page once with Action. It ends at the
// first redirect it does not follow or the first page it has nothing more to do on. The error is for what a test
// cannot judge: a failed request, a chooser without Choose, a consent page without the Action button, a run that
// does not end.
func (b *Browser) Run(ctx context.Context, start string) (*Result, error) {
	res := &Result{}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start, nil)
	if err != nil {
		return nil, err
	}
	confirmed, answered := false, false
	for range maxSteps {
		resp, err := b.c.Do(req)
		if err != nil {
			return res, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		res.Status, res.Page = resp.StatusCode, ""
		res.Visits = append(res.Visits, Visit{req.Method, req.URL.Redacted(), resp.StatusCode})
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc, err := req.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				return res, fmt.Errorf("%s %s: bad Location: %w", req.Method, req.URL.Redacted(), err)
			}
			if b.stops(loc) {
				res.Location = loc
				return res, nil
			}
			if req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil); err != nil {
				return res, err
			}
			continue
		}
		res.Page = string(body)
		if resp.StatusCode != http.StatusOK {
			return res, nil
		}
		p, err := parse(req.URL, body)
		if err != nil {
			return res, err
		}
		switch {
		case p.consent != nil && !answered:
			res.Consent, answered = res.Page, true
			if b.Action == "" {
				return res, nil
			}
			button := p.consent.button(b.Action)
			if button == nil {
				return res, fmt.Errorf("no %q button on the consent page: %.300s", b.Action, body)
			}
			if req, err = p.consent.submit(ctx, req.URL, button, b.Remember); err != nil {
				return res, err
			}
		case len(p.providers) > 0:
			if b.Choose == "" {
				return res, nil
			}
			link, ok := p.providers[b.Choose]
			if !ok {
				return res, fmt.Errorf("no %q on the sign-in page: %.300s", b.Choose, body)
			}
			if req, err = http.NewRequestWithContext(ctx, http.MethodGet, link.String(), nil); err != nil {
				return res, err
			}
		case p.device != nil && !confirmed:
			confirmed, res.UserCode = true, p.device.values().Get("user_code")
			if req, err = p.device.submit(ctx, req.URL, nil, false); err != nil {
				return res, err
			}
		default:
			return res, nil
		}
	}
	return res, errors.New("browser: the run did not end")
}

func (b *Browser) stops(u *url.URL) bool {
	s := u.String()
	for _, p := range b.StopAt {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	if len(b.Within) == 0 {
		return false
	}
	for _, p := range b.Within {
		if strings.HasPrefix(s, p) {
			return false
		}
	}
	return true
}

// page is what a page offers the browser.
type page struct {
	providers map[string]*url.URL // the chooser's links by provider name
	consent   *form               // the form with an approve button
	device    *form               // the form that takes a user_code
}

var approveLabel = regexp.MustCompile(`(?i)^\s*(approve|allow)\s*$`)

func parse(base *url.URL, body []byte) (*page, error) {
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse the page at %s: %w", base.Redacted(), err)
	}
	p := &page{providers: map[string]*url.URL{}}
	walk(doc, func(n *html.Node) bool {
		switch {
		case n.Data == "a" && hasClass(n, "provider"):
			name, ok := strings.CutPrefix(strings.TrimSpace(text(n)), "Continue with ")
			if link, err := base.Parse(attr(n, "href")); ok && err == nil {
				p.providers[name] = link
			}
		case n.Data == "form":
			f := &form{n: n}
			if f.button("approve") != nil && p.consent == nil {
				p.consent = f
			} else if f.has("user_code") && p.device == nil {
				p.device = f
			}
			return false
		}
		return true
	})
	return p, nil
}

// form is one HTML form.
type form struct{ n *html.Node }

// button finds the submit button that answers action: one whose value, name or label is action ("approve" also
// takes "Allow"), and not a deny button.
func (f *form) button(action string) *html.Node {
	var found *html.Node
	walk(f.n, func(n *html.Node) bool {
		if found != nil || !isSubmit(n) {
			return found == nil
		}
		for _, s := range []string{attr(n, "value"), attr(n, "name"), text(n)} {
			if strings.EqualFold(strings.TrimSpace(s), action) || action == "approve" && approveLabel.MatchString(s) {
				found = n
			}
		}
		return found == nil
	})
	return found
}

// has reports whether the form has a field named name.
func (f *form) has(name string) bool {
	_, ok := f.values()[name]
	return ok
}

// values are the fields the form sends: named inputs (checkboxes and radio buttons when checked), not buttons.
func (f *form) values() url.Values {
	v := url.Values{}
	walk(f.n, func(n *html.Node) bool {
		if n.Type == html.ElementNode && (n.Data == "input" || n.Data == "textarea" || n.Data == "select") && !isSubmit(n) {
			typ, name := strings.ToLower(attr(n, "type")), attr(n, "name")
			if name != "" && (typ != "checkbox" && typ != "radio" || hasAttr(n, "checked")) {
				v.Add(name, attr(n, "value"))
			}
		}
		return true
	})
	return v
}

// submit builds the request that sends the form with button (may be nil), as a browser does: to its action (the
// page itself when it has none), with Origin and Referer; remember adds remember=1.
func (f *form) submit(ctx context.Context, pageURL *url.URL, button *html.Node, remember bool) (*http.Request, error) {
	vals := f.values()
	if remember {
		vals.Set("remember", "1")
	}
	if button != nil && attr(button, "name") != "" {
		vals.Set(attr(button, "name"), attr(button, "value"))
	}
	action, err := pageURL.Parse(attr(f.n, "action"))
	if err != nil {
		return nil, fmt.Errorf("form action: %w", err)
	}
	if !strings.EqualFold(attr(f.n, "method"), "post") {
		action.RawQuery = vals.Encode()
		return http.NewRequestWithContext(ctx, http.MethodGet, action.String(), nil)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(vals.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", pageURL.Scheme+"://"+pageURL.Host)
	req.Header.Set("Referer", pageURL.String())
	return req, nil
}

// walk calls fn on every element under n, depth first; fn returns false to skip an element's children.
func walk(n *html.Node, fn func(*html.Node) bool) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type != html.ElementNode || fn(c) {
			walk(c, fn)
		}
	}
}

func isSubmit(n *html.Node) bool {
	typ := strings.ToLower(attr(n, "type"))
	return n.Data == "button" && (typ == "" || typ == "submit") || n.Data == "input" && typ == "submit"
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

func text(n *html.Node) string {
	var b strings.Builder
	var f func(*html.Node)
	f = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			f(c)
		}
	}
	f(n)
	return b.String()
}
