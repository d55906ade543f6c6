package clientmeta

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docServer is an https server the test's fetchers trust, serving documents at paths.
type docServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newDocServer(t *testing.T, routes map[string]http.HandlerFunc) *docServer {
	ds := &docServer{}
	mux := http.NewServeMux()
	for p, h := range routes {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { ds.hits.Add(1); h(w, r) })
	}
	ds.Server = httptest.NewTLSServer(mux)
	t.Cleanup(ds.Close)
	return ds
}

func (ds *docServer) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ds.Certificate())
	return p
}

func jsonDoc(v any, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		if f, ok := v.(func(string) any); ok {
			v = f("https://" + r.Host + r.URL.Path)
		}
		_ = json.NewEncoder(w).Encode(v)
	}
}

func good(id string) any {
	return map[string]any{"client_id": id, "client_name": "Editor", "redirect_uris": []string{"http://127.0.0.1:3000/cb"}}
}

func TestFetchRules(t *testing.T) {
	ds := newDocServer(t, map[string]http.HandlerFunc{
		"/good.json":     jsonDoc(func(id string) any { return good(id) }, "Cache-Control", "max-age=600"),
		"/mismatch.json": jsonDoc(map[string]any{"client_id": "https://evil.example.com/c.json", "client_name": "x", "redirect_uris": []string{"https://a/cb"}}),
		"/noname.json":   jsonDoc(func(id string) any { return map[string]any{"client_id": id, "redirect_uris": []string{"https://a/cb"}} }),
		"/noredir.json":  jsonDoc(func(id string) any { return map[string]any{"client_id": id, "client_name": "x"} }),
		"/secret.json": jsonDoc(func(id string) any {
			return map[string]any{"client_id": id, "client_name": "x", "redirect_uris": []string{"https://a/cb"}, "token_endpoint_auth_method": "client_secret_basic"}
		}),
		"/big.json": jsonDoc(func(id string) any {
			return map[string]any{"client_id": id, "client_name": strings.Repeat("x", 70<<10), "redirect_uris": []string{"https://a/cb"}}
		}),
		"/html": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html></html>")
		},
		"/notjson.json": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, "[1,2")
		},
		"/slow.json": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		},
		"/redirect.json": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
		},
		"/missing.json": http.NotFound,
	})
	f := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool(), Timeout: time.Second})
	ctx := context.Background()

	doc, err := f.Fetch(ctx, ds.URL+"/good.json")
	require.NoError(t, err)
	assert.Equal(t, "Editor", doc.ClientName)
	assert.Equal(t, "none", doc.TokenEndpointAuthMethod)

	for path, want := range map[string]string{
		"/mismatch.json": "must equal the URL it is served from",
		"/noname.json":   "client_name is required",
		"/noredir.json":  "redirect_uris is required",
		"/secret.json":   "use private_key_jwt or none",
		"/big.json":      "larger than 65536 bytes",
		"/html":          `not application/json`,
		"/notjson.json":  "not a JSON object",
		"/slow.json":     "did not answer within 1s",
		"/redirect.json": "redirects",
		"/missing.json":  "HTTP 404",
	} {
		t.Run(path, func(t *testing.T) {
			_, err := f.Fetch(ctx, ds.URL+path)
			var me *Error
			require.ErrorAs(t, err, &me)
			assert.Contains(t, err.Error(), want)
		})
	}

	_, err = f.Fetch(ctx, strings.Replace(ds.URL, "https:", "http:", 1)+"/good.json")
	assert.ErrorContains(t, err, "not an https URL")
	_, err = f.Fetch(ctx, ds.URL+"/")
	assert.ErrorContains(t, err, "not an https URL with a path")
}

// With the protection on (the default), a document on a loopback or private address is refused, whatever name
// leads there: the check runs on the address connected to.
func TestPrivateAddressesRefused(t *testing.T) {
	ds := newDocServer(t, map[string]http.HandlerFunc{"/good.json": jsonDoc(func(id string) any { return good(id) })})
	f := New(Config{RootCAs: ds.pool()})
	port := ds.Listener.Addr().(*net.TCPAddr).Port
	for _, u := range []string{ds.URL + "/good.json", fmt.Sprintf("https://localhost:%d/good.json", port)} {
		_, err := f.Fetch(context.Background(), u)
		assert.ErrorContains(t, err, "non-public address", u)
	}
	assert.Zero(t, ds.hits.Load(), "nothing was requested")

	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false,
		"192.168.1.1": false, "169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::1": false,
		"fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false, "224.0.0.1": false,
		// Issue 13, item 9: IPv6 forms that lead to an IPv4 address are judged by that address, and the deprecated or
		// unverifiable forms are refused.
		"64:ff9b::7f00:1": false, "64:ff9b::a9fe:a9fe": false, "64:ff9b::a00:1": false, "64:ff9b::808:808": true,
		"2002:7f00:1::1": false, "2002:c0a8:101::1": false, "2002:808:808::1": true,
		"::127.0.0.1": false, "::8.8.8.8": false, "fec0::1": false, "feff::1": false, "2001:0:4136:e378::1": false,
		"64:ff9b:1::a00:1": false,
	} {
		assert.Equal(t, want, public(netip.MustParseAddr(addr)), addr)
	}
}

func TestHostLists(t *testing.T) {
	ds := newDocServer(t, map[string]http.HandlerFunc{"/good.json": jsonDoc(func(id string) any { return good(id) })})
	ctx := context.Background()
	deny := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool(), DeniedHosts: []string{"127.0.0.1"}})
	_, err := deny.Fetch(ctx, ds.URL+"/good.json")
	assert.ErrorContains(t, err, "does not accept clients hosted at 127.0.0.1")
	allow := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool(), AllowedHosts: []string{"*.example.com"}})
	_, err = allow.Fetch(ctx, ds.URL+"/good.json")
	assert.ErrorContains(t, err, "does not accept clients hosted at 127.0.0.1")
	assert.True(t, hostMatches("app.example.com", []string{"*.example.com"}))
	assert.False(t, hostMatches("example.com.evil.net", []string{"*.example.com"}))
	assert.Zero(t, ds.hits.Load())
}

func TestCacheFollowsHeadersWithinBounds(t *testing.T) {
	ds := newDocServer(t, map[string]http.HandlerFunc{
		"/cached.json":  jsonDoc(func(id string) any { return good(id) }, "Cache-Control", "public, max-age=600"),
		"/nostore.json": jsonDoc(func(id string) any { return good(id) }, "Cache-Control", "no-store"),
	})
	f := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool(), MinCache: time.Nanosecond, MaxCache: time.Hour})
	ctx := context.Background()
	for range 3 {
		_, err := f.Fetch(ctx, ds.URL+"/cached.json")
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, ds.hits.Load(), "max-age=600: fetched once")
	for range 2 {
		_, err := f.Fetch(ctx, ds.URL+"/nostore.json")
		require.NoError(t, err)
		time.Sleep(time.Millisecond)
	}
	assert.EqualValues(t, 3, ds.hits.Load(), "no-store: fetched each time (the minimum is 1 ns here)")

	h := http.Header{}
	h.Set("Cache-Control", "max-age=999999")
	assert.Equal(t, time.Hour, f.lifetime(h), "capped at MaxCache")
	bounded := New(Config{MinCache: time.Minute})
	h.Set("Cache-Control", "no-store")
	assert.Equal(t, time.Minute, bounded.lifetime(h), "never below MinCache")
	h = http.Header{}
	h.Set("Expires", time.Now().Add(30*time.Minute).UTC().Format(http.TimeFormat))
	assert.InDelta(t, (30 * time.Minute).Seconds(), bounded.lifetime(h).Seconds(), 5)

	small := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool(), CacheEntries: 1})
	small.store("a", &Document{}, time.Hour)
	small.store("b", &Document{}, time.Hour)
	a, _ := small.cached("a")
	b, _ := small.cached("b")
	assert.Nil(t, a, "the cache is bounded")
	assert.NotNil(t, b)
}
