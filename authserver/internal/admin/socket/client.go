package socket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
)

// Client runs the commands in the server that answers on an admin socket: each method is one request, served by
// the server's own service.Local.
type Client struct {
	path string
	hc   *http.Client
}

var _ service.Service = (*Client)(nil)

// Dial returns a client of the admin socket at path once a server accepts connections there.
func Dial(ctx context.Context, path string) (*Client, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	_ = c.Close()
	tr := &http.Transport{
		DialContext:           func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", path) },
		ExpectContinueTimeout: 5 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   1,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}, nil
}

// Close releases the client's connection.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// ListClients implements service.Service.
func (c *Client) ListClients(ctx context.Context) ([]service.Client, error) {
	return call[[]service.Client](ctx, c, cmdListClients, struct{}{})
}

// GetClient implements service.Service.
func (c *Client) GetClient(ctx context.Context, id string) (service.Client, error) {
	return call[service.Client](ctx, c, cmdGetClient, idArgs{ID: id})
}

// DeleteClient implements service.Service.
func (c *Client) DeleteClient(ctx context.Context, id string) (int, error) {
	out, err := call[countOut](ctx, c, cmdDeleteClient, idArgs{ID: id})
	return out.Count, err
}

// RevokeClient implements service.Service.
func (c *Client) RevokeClient(ctx context.Context, id string) (int, error) {
	out, err := call[countOut](ctx, c, cmdRevokeClient, idArgs{ID: id})
	return out.Count, err
}

// RevokeUser implements service.Service.
func (c *Client) RevokeUser(ctx context.Context, userID string) (int, error) {
	out, err := call[countOut](ctx, c, cmdRevokeUser, idArgs{ID: userID})
	return out.Count, err
}

// ListGrants implements service.Service.
func (c *Client) ListGrants(ctx context.Context, f service.GrantFilter) ([]service.Grant, error) {
	return call[[]service.Grant](ctx, c, cmdListGrants, f)
}

// Purge implements service.Service.
func (c *Client) Purge(ctx context.Context) (int, error) {
	out, err := call[countOut](ctx, c, cmdPurge, struct{}{})
	return out.Count, err
}

// PurgeClients implements service.Service.
func (c *Client) PurgeClients(ctx context.Context, o service.PurgeClientsOptions) (service.PurgedClients, error) {
	return call[service.PurgedClients](ctx, c, cmdPurgeClients, o)
}

// RotateKeys implements service.Service.
func (c *Client) RotateKeys(ctx context.Context, activateAfter time.Duration) (service.KeyRotation, error) {
	return call[service.KeyRotation](ctx, c, cmdRotateKeys, rotateArg{ActivateAfter: activateAfter})
}

// Backup implements service.Service: the server streams its snapshot, and a trailer says it is whole.
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	resp, err := c.post(ctx, cmdBackup, http.NoBody, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("backup through the admin socket: %w", err)
	}
	switch status := resp.Trailer.Get(backupStatus); status {
	case "ok":
		return nil
	case "":
		return errors.New("backup through the admin socket: the dump ended without its end mark (incomplete)")
	default:
		return fmt.Errorf("backup through the admin socket: %s", status)
	}
}

// Restore implements service.Service. The dump is sent only once the server has accepted the command
// (Expect: 100-continue), so a refusal comes before the upload.
func (c *Client) Restore(ctx context.Context, r io.Reader) error {
	resp, err := c.post(ctx, cmdRestore, r, http.Header{"Expect": {"100-continue"}})
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// call runs one command whose arguments and result are JSON.
func call[Out any](ctx context.Context, c *Client, name string, in any) (Out, error) {
	var out Out
	body, err := json.Marshal(in)
	if err != nil {
		return out, fmt.Errorf("admin socket: encode %s: %w", name, err)
	}
	resp, err := c.post(ctx, name, bytes.NewReader(body), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("admin socket: read the answer to %s: %w", name, err)
	}
	return out, nil
}

// post sends one command and returns its answer if it succeeded; a failure comes back as the command's error.
func (c *Client) post(ctx context.Context, name string, body io.Reader, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://authserver/v1/"+name, body)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// A server that accepts and at once closes is refusing this user.
		return nil, fmt.Errorf("admin socket %s: %w (only the user the authserver runs as, and root, may use it)", c.path, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	var we wireError
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &we) != nil || we.Error == "" {
		return nil, fmt.Errorf("admin socket %s: the running authserver does not serve %q (HTTP %d): is it older than this command?",
			c.path, name, resp.StatusCode)
	}
	return nil, errorOf(we)
}
