package connections

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
)

func newKey(id string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return id + ":" + base64.StdEncoding.EncodeToString(b)
}

func TestParseKeys(t *testing.T) {
	k1, k2 := newKey("k1"), newKey("k2")
	ring, err := ParseKeys(k1 + ",\n" + k2 + "\n")
	require.NoError(t, err)
	assert.Equal(t, "k1", ring.Current(), "the first key seals")
	assert.True(t, ring.Has("k2"))
	for _, bad := range []string{"", "k1", "k1:" + base64.StdEncoding.EncodeToString([]byte("short")), "bad id!:" + k1[3:], k1 + "," + k1} {
		_, err := ParseKeys(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func newService(t *testing.T, st Store, keys string) *Service {
	t.Helper()
	ring, err := ParseKeys(keys)
	require.NoError(t, err)
	svc, err := New(Config{Issuer: "https://auth.example.com", Keys: ring, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Upstreams: []Upstream{{Name: "gitlab", ClientID: "id", AuthURL: "https://gitlab.example.com/oauth/authorize",
			TokenURL: "https://gitlab.example.com/oauth/token"}}}, st)
	require.NoError(t, err)
	return svc
}

func openStore(t *testing.T) store.Store {
	st, err := embedded.Open("", slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// The store holds ciphertext only, bound to its user and upstream: a record copied to another user does not open.
func TestSealedAtRest(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	svc := newService(t, st, newKey("k1"))
	tok := &oauth2.Token{AccessToken: "gho_access_secret", RefreshToken: "ghr_refresh_secret", Expiry: time.Now().Add(time.Hour)}
	require.NoError(t, st.PutConnection(ctx, svc.record("1001", "gitlab", tok, time.Now())))

	c, err := st.GetConnection(ctx, "1001", "gitlab")
	require.NoError(t, err)
	assert.False(t, bytes.Contains(c.Sealed, []byte("secret")), "no token in clear")
	var dump bytes.Buffer
	require.NoError(t, st.(store.Backup).Dump(ctx, &dump))
	assert.NotContains(t, dump.String(), "gho_access_secret")
	assert.NotContains(t, dump.String(), "ghr_refresh_secret")

	got, err := svc.Token(ctx, "1001", "gitlab")
	require.NoError(t, err)
	assert.Equal(t, "gho_access_secret", got.AccessToken)

	moved := *c
	moved.UserID = "1002"
	require.NoError(t, st.PutConnection(ctx, &moved))
	_, err = svc.Token(ctx, "1002", "gitlab")
	require.ErrorIs(t, err, ErrWrongKey, "a record moved to another user must not open")
}

// Rotation: with the new key first and the old one after, the start seals every record again under the new key;
// then the old key can go. A key that opens nothing stops the start.
func TestCheckKeysRotatesAndRefusesAWrongKey(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	oldKey, newKeyText := newKey("2026a"), newKey("2026b")
	old := newService(t, st, oldKey)
	for _, u := range []string{"1001", "1002"} {
		require.NoError(t, st.PutConnection(ctx, old.record(u, "gitlab", &oauth2.Token{AccessToken: "at-" + u}, time.Now())))
	}
	n, err := old.CheckKeys(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "nothing to seal again")

	_, err = newService(t, st, newKeyText).CheckKeys(ctx)
	require.ErrorContains(t, err, `key "2026a"`, "the old key is missing: refuse")

	wrong := newService(t, st, "2026a:"+newKeyText[len("2026b:"):]) // the right id, another key
	_, err = wrong.CheckKeys(ctx)
	require.ErrorIs(t, err, ErrWrongKey)

	both := newService(t, st, newKeyText+","+oldKey)
	n, err = both.CheckKeys(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	onlyNew := newService(t, st, newKeyText)
	n, err = onlyNew.CheckKeys(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	got, err := onlyNew.Token(ctx, "1002", "gitlab")
	require.NoError(t, err)
	assert.Equal(t, "at-1002", got.AccessToken, "nothing lost in the rotation")
}

// A connect link is bound to its user and upstream, expires, and works once.
func TestTickets(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	svc := newService(t, st, newKey("k1"))
	link := svc.ConnectURL("1001", "gitlab")
	require.True(t, strings.HasPrefix(link, "https://auth.example.com/connect/gitlab?ticket="), link)
	raw := ticketOf(t, link)
	user, err := svc.ReadTicket(raw, "gitlab")
	require.NoError(t, err)
	assert.Equal(t, "1001", user)
	_, err = svc.ReadTicket(raw, "linear")
	require.ErrorIs(t, err, ErrBadTicket, "for another upstream")
	_, err = svc.ReadTicket(raw[:len(raw)-4]+"AAAA", "gitlab")
	require.ErrorIs(t, err, ErrBadTicket, "altered")
	require.NoError(t, svc.UseTicket(ctx, raw))
	require.ErrorIs(t, svc.UseTicket(ctx, raw), ErrBadTicket, "used once")

	unused := ticketOf(t, svc.ConnectURL("1001", "gitlab"))
	svc.cfg.Now = func() time.Time { return time.Now().Add(TicketLifetime + time.Second) }
	_, err = svc.ReadTicket(unused, "gitlab")
	require.ErrorIs(t, err, ErrBadTicket, "expired")
}

func ticketOf(t *testing.T, link string) string {
	u, err := url.Parse(link)
	require.NoError(t, err)
	return u.Query().Get("ticket")
}

// An upstream that cannot be reached for a refresh: the token is handed out while it is still valid, and after its
// expiry the answer is ErrUpstreamUnavailable; the connection is kept either way (only a refused refresh token ends it).
func TestRefreshWithTheUpstreamDown(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	svc := newService(t, st, newKey("k1"))
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens there any more
	svc.upstreams["gitlab"].TokenURL = down.URL + "/oauth/token"
	tok := &oauth2.Token{AccessToken: "still-good", RefreshToken: "rt", Expiry: time.Now().Add(30 * time.Second)}
	require.NoError(t, svc.Keep(ctx, "gitlab", "1001", tok))

	got, err := svc.Token(ctx, "1001", "gitlab")
	require.NoError(t, err)
	assert.Equal(t, "still-good", got.AccessToken, "valid for 30 s more: served while the refresh fails")

	svc.cfg.Now = func() time.Time { return time.Now().Add(time.Minute) }
	_, err = svc.Token(ctx, "1001", "gitlab")
	require.ErrorIs(t, err, ErrUpstreamUnavailable)
	_, err = st.GetConnection(ctx, "1001", "gitlab")
	require.NoError(t, err, "the connection is kept")
}
