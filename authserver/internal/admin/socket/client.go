package socket

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client sends command lines to the server that answers on an admin socket.
type Client struct {
	path string
	hc   *http.Client
}

// Dial returns a client of the admin socket at path once a server accepts connections there.
func Dial(ctx context.Context, path string) (*Client, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	_ = c.Close()
	// No response timeout: a command answers when it ends, and its output comes as it is written.
	tr := &http.Transport{
		DialContext:           func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", path) },
		ExpectContinueTimeout: 5 * time.Second,
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

// Run runs one command line in the server: stdin (nil when the command reads no input) is sent once the server's
// command reads it, the command's stdout and stderr are copied here as it writes them, and the command's error is
// returned as the server's command returned it (errors.Is finds its kind).
func (c *Client) Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	body := io.Reader(http.NoBody)
	if stdin != nil {
		body = stdin
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://authserver"+runPath+"?"+url.Values{"arg": args}.Encode(), body)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if stdin != nil {
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// A server that accepts and at once closes is refusing this user.
		return fmt.Errorf("admin socket %s: %w (only the user the authserver runs as, and root, may use it)", c.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin socket %s: the running authserver does not run command lines (HTTP %d): is it older than this command?",
			c.path, resp.StatusCode)
	}
	status, err := readAnswer(resp.Body, stdout, stderr)
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", c.path, err)
	}
	return errorOf(status)
}
