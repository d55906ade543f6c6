package clientmeta

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
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

// logTo is a logger writing to a buffer the test reads once the fetches it made have returned.
func logTo() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
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
	log, logged := logTo()
	f := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool(), Timeout: time.Second, Log: log})
	ctx := context.Background()

	doc, err := f.Fetch(ctx, ds.URL+"/good.json")
	require.NoError(t, err)
	assert.Equal(t, "Editor", doc.ClientName)
	assert.Equal(t, "none", doc.TokenEndpointAuthMethod)

	// The caller is told which rule of ours the document breaks, or that it could not be fetched and what a usable
	// one looks like; what the other host answered is only in the log.
	notFetched := "could not be fetched: it must be served at that very URL (no redirect), from a public address, over https, " +
		"answering 200 with application/json of at most 65536 bytes within 1s"
	for path, c := range map[string]struct{ told, logged string }{
		"/mismatch.json": {"must equal the URL it is served from", `client_id \"https://evil.example.com/c.json\"`},
		"/noname.json":   {"client_name is required", "client_name is required"},
		"/noredir.json":  {"redirect_uris is required", "redirect_uris is required"},
		"/secret.json":   {"use private_key_jwt or none", "use private_key_jwt or none"},
		"/big.json":      {notFetched, "larger than 65536 bytes"},
		"/html":          {notFetched, `served as \"text/html\"`},
		"/notjson.json":  {"is not a JSON object of client metadata", "unexpected end of JSON input"},
		"/slow.json":     {notFetched, "no answer within 1s"},
		"/redirect.json": {notFetched, "redirected"},
		"/missing.json":  {notFetched, "answered HTTP 404"},
	} {
		t.Run(path, func(t *testing.T) {
			logged.Reset()
			_, err := f.Fetch(ctx, ds.URL+path)
			var me *Error
			require.ErrorAs(t, err, &me)
			assert.Contains(t, err.Error(), c.told)
			for _, leak := range []string{"404", "text/html", "evil.example.com", "169.254", "unexpected end"} {
				assert.NotContains(t, err.Error(), leak, "the caller is not told what the other host answered")
			}
			assert.Contains(t, logged.String(), c.logged, "the log says why")
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
	log, logged := logTo()
	f := New(Config{RootCAs: ds.pool(), Log: log})
	port := ds.Listener.Addr().(*net.TCPAddr).Port
	for _, u := range []string{ds.URL + "/good.json", fmt.Sprintf("https://localhost:%d/good.json", port)} {
		_, err := f.Fetch(context.Background(), u)
		assert.ErrorContains(t, err, "could not be fetched", u)
		assert.NotContains(t, err.Error(), "resolves to", "where a name leads is not told")
	}
	assert.Contains(t, logged.String(), "the host resolves to 127.0.0.1, a private, loopback or otherwise non-public address")
	assert.Zero(t, ds.hits.Load(), "nothing was requested")

	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false,
		"192.168.1.1": false, "169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::1": false,
		"fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false, "224.0.0.1": false,
		// IPv6 forms that lead to an IPv4 address are judged by that address (else they would reach a private IPv4
		// address past the check), and the deprecated or unverifiable forms are refused.
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

// Every spelling of a denied host is denied: a trailing dot (a fully qualified name, which resolves the same),
// upper case, full-width or other international forms; the lists themselves may be written in any of them.
func TestHostListsCompareCanonicalNames(t *testing.T) {
	ds := newDocServer(t, map[string]http.HandlerFunc{"/good.json": jsonDoc(func(id string) any { return good(id) })})
	port := ds.Listener.Addr().(*net.TCPAddr).Port
	ctx := context.Background()
	deny := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool(), DeniedHosts: []string{"localhost", "*.Bücher.example."}})
	for _, host := range []string{"localhost.", "LOCALHOST", "LocalHost.", "ｌｏｃａｌｈｏｓｔ", "localhost..", "shop.xn--bcher-kva.example", "shop.BÜCHER.example."} {
		u := fmt.Sprintf("https://%s:%d/good.json", host, port)
		assert.False(t, deny.WouldFetch(u), u)
		_, err := deny.Fetch(ctx, u)
		assert.ErrorContains(t, err, "this server does not accept clients hosted at", u)
		_, err = deny.JWKS(ctx, u, false)
		assert.ErrorContains(t, err, "this server does not accept client keys hosted at", u)
	}
	assert.Zero(t, ds.hits.Load(), "nothing was requested")

	allow := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool(), AllowedHosts: []string{"LOCALHOST."}})
	for _, host := range []string{"localhost", "localhost.", "ｌｏｃａｌｈｏｓｔ"} {
		assert.True(t, allow.WouldFetch(fmt.Sprintf("https://%s:%d/good.json", host, port)), host)
	}
	_, err := allow.Fetch(ctx, fmt.Sprintf("https://127.0.0.1:%d/good.json", port))
	assert.ErrorContains(t, err, "does not accept clients hosted at 127.0.0.1")

	assert.NoError(t, CheckHosts([]string{"example.com", "*.example.com", "bücher.example", "localhost."}))
	assert.Error(t, CheckHosts([]string{"exa mple.ü"}))
}

// A document or key set that cannot be fetched is remembered as a failure for the minimum cache time: a flood of
// requests naming it makes one request to its host, not one each.
func TestFailuresCached(t *testing.T) {
	ds := newDocServer(t, map[string]http.HandlerFunc{
		"/broken.json": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
	})
	f := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool()})
	ctx := context.Background()
	for range 100 {
		_, err := f.Fetch(ctx, ds.URL+"/broken.json")
		assert.ErrorContains(t, err, "could not be fetched")
		assert.NotContains(t, err.Error(), "500")
	}
	assert.EqualValues(t, 1, ds.hits.Load(), "100 look-ups, 1 fetch")
	assert.False(t, f.WouldFetch(ds.URL+"/broken.json"), "the failure is cached")
	for range 100 {
		_, err := f.JWKS(ctx, ds.URL+"/broken.json", true)
		assert.ErrorContains(t, err, "could not be fetched")
	}
	assert.EqualValues(t, 2, ds.hits.Load(), "key sets likewise (under their own key), even when a fresh copy is asked for")

	// Once the failure expires, the next look-up tries again.
	f.mu.Lock()
	f.cache[ds.URL+"/broken.json"].Value.(*entry).expires = time.Now().Add(-time.Second)
	f.mu.Unlock()
	assert.True(t, f.WouldFetch(ds.URL+"/broken.json"))
	_, err := f.Fetch(ctx, ds.URL+"/broken.json")
	assert.Error(t, err)
	assert.EqualValues(t, 3, ds.hits.Load())
}

func TestConcurrentLookupsShareOneFetch(t *testing.T) {
	release := make(chan struct{})
	ds := newDocServer(t, map[string]http.HandlerFunc{
		"/slow.json": func(w http.ResponseWriter, r *http.Request) {
			<-release
			jsonDoc(func(id string) any { return good(id) })(w, r)
		},
	})
	f := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool(), Timeout: time.Minute})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 50 {
		wg.Go(func() {
			if _, err := f.Fetch(context.Background(), ds.URL+"/slow.json"); err == nil {
				ok.Add(1)
			}
		})
	}
	// Let the look-ups reach the fetch in flight (each either joins it or, later, finds its result cached).
	require.Eventually(t, func() bool { return ds.hits.Load() == 1 }, 10*time.Second, time.Millisecond)
	assert.False(t, f.WouldFetch(ds.URL+"/slow.json"), "a look-up now joins the fetch in flight: it costs no fetch")
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	assert.EqualValues(t, 50, ok.Load())
	assert.EqualValues(t, 1, ds.hits.Load(), "50 concurrent look-ups, 1 fetch")

	// A caller that gives up does not cancel the fetch for the others, nor leave a failure behind.
	release2 := make(chan struct{})
	ds2 := newDocServer(t, map[string]http.HandlerFunc{
		"/slow.json": func(w http.ResponseWriter, r *http.Request) {
			<-release2
			jsonDoc(func(id string) any { return good(id) })(w, r)
		},
	})
	f2 := New(Config{AllowPrivateAddresses: true, RootCAs: ds2.pool(), Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := f2.Fetch(ctx, ds2.URL+"/slow.json"); done <- err }()
	require.Eventually(t, func() bool { return ds2.hits.Load() == 1 }, 10*time.Second, time.Millisecond)
	cancel()
	assert.ErrorContains(t, <-done, "the request ended before")
	close(release2)
	_, err := f2.Fetch(context.Background(), ds2.URL+"/slow.json")
	require.NoError(t, err)
	assert.EqualValues(t, 1, ds2.hits.Load(), "the abandoned fetch completed and was cached")
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
	small.store("a", &Document{}, nil, time.Hour)
	small.store("b", &Document{}, nil, time.Hour)
	assert.Nil(t, small.cached("a"), "the cache is bounded")
	assert.NotNil(t, small.cached("b"))
}
