package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// tokenFile is what the command keeps between runs. It holds credentials: it is written readable by its owner only.
type tokenFile struct {
	MCPURL        string    `json:"mcp_url"`
	Resource      string    `json:"resource"`
	Issuer        string    `json:"issuer"`
	TokenEndpoint string    `json:"token_endpoint"`
	ClientID      string    `json:"client_id"`
	TokenType     string    `json:"token_type"`
	AccessToken   string    `json:"access_token"`
	RefreshToken  string    `json:"refresh_token,omitempty"`
	Expiry        time.Time `json:"expiry"`
}

func readTokenFile(path string) (*tokenFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the token file (run `mcp-token get` first): %w", err)
	}
	var f tokenFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("token file %s is not valid: %w", path, err)
	}
	return &f, nil
}

// write replaces the file atomically (a reader never sees half a file), with mode 0600 from its creation on.
func (f *tokenFile) write(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".mcp-token-*") // created 0600
	if err != nil {
		return fmt.Errorf("write the token file: %w", err)
	}
	defer os.Remove(tmp.Name())
	b, _ := json.MarshalIndent(f, "", "  ")
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write the token file: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write the token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write the token file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write the token file: %w", err)
	}
	return nil
}
