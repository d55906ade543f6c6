// Package clientprofile replays, on the wire, what real MCP clients do to connect to an OAuth-protected MCP server:
// how they discover the authorization server, identify themselves (a Client ID Metadata Document or dynamic
// registration), which redirect URIs, scope strings and token endpoint authentication they use, what headers they
// send, and how they react to invalid_client. The hosted clients (Claude.ai, ChatGPT) and the closed-source ones
// cannot run in a test; their profiles follow their public documents and issue reports, each cited in Source. The
// end-to-end tests run every profile through the whole gateway (docs/clients.md lists them).
package clientprofile

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Profile is one client's habits.
type Profile struct {
	Name       string // as docs/clients.md names it
	ClientName string // client_name it sends, and its clientInfo name
	Source     string // where the behaviour replayed here comes from

	// Document is the client's metadata document, given its client_id (the URL it is served at) and the URL of its
	// keys; nil: the client has none. DocumentPath and KeysPath are where the test serves them.
	Document     func(clientID, keysURL string) map[string]any
	DocumentPath string
	KeysPath     string
	// UseDocument says, from the authorization server's metadata, whether the client presents its document.
	UseDocument func(Metadata) bool
	// Registration is its dynamic registration request (port: its loopback port; mcpURL: the server it adds);
	// nil: it does not register.
	Registration func(port int, mcpURL string) map[string]any
	// RedirectURI is the redirect_uri it sends.
	RedirectURI func(port int, mcpURL string) string
	// Scope is the scope parameter it sends, from the challenge's scope, the protected resource's scopes_supported
	// and the authorization server's ("" omits the parameter).
	Scope func(challenge string, resourceScopes, serverScopes []string) string
	// AuthorizeParams are further authorization request parameters it adds.
	AuthorizeParams func(scope string) url.Values

	ProtocolVersion         string            // MCP revision it asks for
	Headers                 map[string]string // sent on every request
	DiscoveryProtocolHeader bool              // sends MCP-Protocol-Version on the metadata requests (the TypeScript SDK does)
	BrowserOrigin           string            // a web app on this origin: every request is cross-origin, preflighted
	// ReRegisterOnInvalidClient: on 401 invalid_client at the token endpoint it registers again and starts over.
	ReRegisterOnInvalidClient bool

	// private_key_jwt: the key it signs client assertions with.
	Signer        crypto.Signer
	SigningMethod jwt.SigningMethod
	KeyID         string
}

const (
	claudeCallback    = "https://claude.ai/api/mcp/auth_callback"
	claudeComCallback = "https://claude.com/api/mcp/auth_callback"
	chatGPTConnector  = "e2e-connector"
)

// cimdWithNone is Claude's and Claude Code's rule: the document only when the server advertises document support
// and lists none among its token endpoint auth methods (the documents declare public clients).
func cimdWithNone(m Metadata) bool {
	return m["client_id_metadata_document_supported"] == true && slices.Contains(m.Strings("token_endpoint_auth_methods_supported"), "none")
}

func cimd(m Metadata) bool { return m["client_id_metadata_document_supported"] == true }

// sdkScope is the TypeScript SDK's choice (Claude Code, VS Code and MCP Inspector are built on it or do the same):
// the challenge's scope, else the protected resource's scopes_supported, else none.
func sdkScope(challenge string, resource, _ []string) string {
	if challenge != "" {
		return challenge
	}
	return strings.Join(resource, " ")
}

// sdkPrompt: the TypeScript SDK asks for consent again when it asks for offline_access.
func sdkPrompt(scope string) url.Values {
	if slices.Contains(strings.Fields(scope), "offline_access") {
		return url.Values{"prompt": {"consent"}}
	}
	return nil
}

func publicDoc(name string, redirects []string) func(string, string) map[string]any {
	return func(id, _ string) map[string]any {
		return map[string]any{"client_id": id, "client_name": name, "redirect_uris": redirects,
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
			"token_endpoint_auth_method": "none"}
	}
}

func fixed(u string) func(int, string) string { return func(int, string) string { return u } }

// ClaudeAI is Claude.ai (and the Claude apps) adding a custom connector.
func ClaudeAI() Profile {
	redirects := []string{claudeCallback, claudeComCallback}
	return Profile{
		Name: "Claude.ai", ClientName: "Claude",
		Source: "Claude's connector documentation (CIMD only with none advertised, callbacks on claude.ai and claude.com); " +
			"reports of stray whitespace and unlisted scopes, all metadata scopes without a challenge scope, re-registration on invalid_client",
		Document: publicDoc("Claude", redirects), DocumentPath: "/oauth/mcp-oauth-client-metadata", UseDocument: cimdWithNone,
		Registration: func(int, string) map[string]any {
			return map[string]any{"client_name": "Claude", "redirect_uris": redirects, "grant_types": []string{"authorization_code", "refresh_token"},
				"response_types": []string{"code"}, "token_endpoint_auth_method": "client_secret_post"}
		},
		RedirectURI: fixed(claudeCallback),
		Scope: func(challenge string, _, server []string) string {
			base := challenge
			if base == "" {
				base = strings.Join(server, " ")
			}
			// Stray whitespace, offline_access appended, and a scope the server never listed.
			return " " + base + "  offline_access profile"
		},
		ProtocolVersion: "2025-06-18", Headers: map[string]string{"User-Agent": "Claude-User"},
		ReRegisterOnInvalidClient: true,
	}
}

// ChatGPT is ChatGPT's developer-mode connector: a metadata document that declares private_key_jwt.
func ChatGPT() Profile {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(fmt.Sprintf("clientprofile: RSA key: %v", err))
	}
	redirect := "https://chatgpt.com/connector/oauth/" + chatGPTConnector
	return Profile{
		Name: "ChatGPT", ClientName: "ChatGPT",
		Source: "the document ChatGPT publishes (private_key_jwt, RS256, jwks_uri, connector redirect); " +
			"reports that it does not fall back to none",
		Document: func(id, keys string) map[string]any {
			return map[string]any{"client_id": id, "client_uri": "https://chatgpt.com/", "client_name": "ChatGPT",
				"redirect_uris": []string{redirect}, "grant_types": []string{"authorization_code", "refresh_token"},
				"response_types": []string{"code"}, "token_endpoint_auth_method": "private_key_jwt",
				"token_endpoint_auth_signing_alg": "RS256", "jwks_uri": keys}
		},
		DocumentPath: "/oauth/" + chatGPTConnector + "/client.json", KeysPath: "/oauth/jwks.json", UseDocument: cimd,
		RedirectURI: fixed(redirect),
		Scope: func(challenge string, resource, _ []string) string {
			if challenge != "" {
				return challenge
			}
			return strings.Join(resource, " ")
		},
		ProtocolVersion: "2025-06-18", Headers: map[string]string{"User-Agent": "openai-mcp/1.0.0"},
		Signer: key, SigningMethod: jwt.SigningMethodRS256, KeyID: "chatgpt-e2e",
	}
}

// ClaudeCode is Claude Code's `claude mcp add --transport http`, then /mcp.
func ClaudeCode() Profile {
	return Profile{
		Name: "Claude Code", ClientName: "claude-code",
		Source: "its metadata document lists http://localhost/callback without a port (anthropics/claude-code#37747); " +
			"it redirects to http://localhost:<port>/callback; DCR as a native client otherwise; TypeScript SDK discovery",
		Document: publicDoc("Claude Code", []string{"http://localhost/callback"}), DocumentPath: "/oauth/claude-code-client-metadata",
		UseDocument: cimdWithNone,
		Registration: func(port int, _ string) map[string]any {
			return map[string]any{"client_name": "Claude Code", "redirect_uris": []string{fmt.Sprintf("http://localhost:%d/callback", port)},
				"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
				"token_endpoint_auth_method": "none", "application_type": "native"}
		},
		RedirectURI:     func(port int, _ string) string { return fmt.Sprintf("http://localhost:%d/callback", port) },
		Scope:           sdkScope,
		AuthorizeParams: sdkPrompt,
		ProtocolVersion: "2025-11-25", DiscoveryProtocolHeader: true, Headers: map[string]string{"User-Agent": "claude-code/2.1"},
		ReRegisterOnInvalidClient: true,
	}
}

// VSCode is VS Code's MCP support (GitHub Copilot agent mode).
func VSCode() Profile {
	redirects := []string{"https://insiders.vscode.dev/redirect", "https://vscode.dev/redirect", "http://127.0.0.1/", "http://127.0.0.1:33418/"}
	return Profile{
		Name: "VS Code", ClientName: "Visual Studio Code",
		Source: "microsoft/vscode#271403 (CIMD when supported, https://vscode.dev/oauth/client-metadata.json), #278512 (its redirect " +
			"URIs; another loopback port when 33418 is taken)",
		Document: publicDoc("Visual Studio Code", redirects), DocumentPath: "/oauth/client-metadata.json", UseDocument: cimd,
		Registration: func(int, string) map[string]any {
			return map[string]any{"client_name": "Visual Studio Code", "redirect_uris": redirects,
				"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none"}
		},
		RedirectURI:     func(port int, _ string) string { return fmt.Sprintf("http://127.0.0.1:%d/", port) },
		Scope:           sdkScope,
		ProtocolVersion: "2025-11-25", DiscoveryProtocolHeader: true, Headers: map[string]string{"User-Agent": "Visual Studio Code"},
	}
}

// Cursor is Cursor's MCP client.
func Cursor() Profile {
	return Profile{
		Name: "Cursor", ClientName: "Cursor",
		Source: "its dynamic registration with three redirect URIs, the cursor:// private-use scheme among them (reported by " +
			"servers that refused it); no scope parameter in this replay",
		Registration: func(int, string) map[string]any {
			return map[string]any{"client_name": "Cursor", "redirect_uris": []string{"cursor://anysphere.cursor-mcp/oauth/callback",
				"https://www.cursor.com/agents/mcp/oauth/callback", "http://localhost:8787/callback"},
				"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
				"token_endpoint_auth_method": "none"}
		},
		RedirectURI:     fixed("cursor://anysphere.cursor-mcp/oauth/callback"),
		Scope:           func(string, []string, []string) string { return "" },
		ProtocolVersion: "2025-06-18", Headers: map[string]string{"User-Agent": "Cursor/3.14"},
	}
}

// Codex is the Codex CLI's `codex mcp add --url`, then login.
func Codex() Profile {
	callback := func(port int, mcpURL string) string {
		return fmt.Sprintf("http://127.0.0.1:%d/callback/%s", port, CallbackID(mcpURL))
	}
	return Profile{
		Name: "Codex", ClientName: "codex-mcp-client",
		Source: "registrations captured from Codex 0.147 (native, ephemeral http://127.0.0.1 port, /callback/<id>); the " +
			"deterministic callback id of openai/codex#30460",
		Registration: func(port int, mcpURL string) map[string]any {
			return map[string]any{"client_name": "Codex", "redirect_uris": []string{callback(port, mcpURL)},
				"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
				"token_endpoint_auth_method": "none", "application_type": "native"}
		},
		RedirectURI: callback,
		Scope: func(challenge string, resource, _ []string) string {
			if challenge != "" {
				return challenge
			}
			return strings.Join(resource, " ")
		},
		ProtocolVersion: "2025-06-18", Headers: map[string]string{"User-Agent": "codex_cli_rs/0.147.0"},
	}
}

// MCPInspector is MCP Inspector's OAuth flow: a web app on http://localhost:6274, so every request it makes is
// cross-origin.
func MCPInspector() Profile {
	return Profile{
		Name: "MCP Inspector", ClientName: "MCP Inspector",
		Source: "MCP Inspector (TypeScript SDK in the browser): DCR with its /oauth/callback and /oauth/callback/debug URIs, " +
			"CORS preflights, MCP-Protocol-Version on discovery",
		Registration: func(int, string) map[string]any {
			return map[string]any{"client_name": "MCP Inspector", "redirect_uris": []string{"http://localhost:6274/oauth/callback",
				"http://localhost:6274/oauth/callback/debug"}, "grant_types": []string{"authorization_code", "refresh_token"},
				"response_types": []string{"code"}, "token_endpoint_auth_method": "none"}
		},
		RedirectURI:     fixed("http://localhost:6274/oauth/callback"),
		Scope:           sdkScope,
		AuthorizeParams: sdkPrompt,
		ProtocolVersion: "2025-11-25", DiscoveryProtocolHeader: true, BrowserOrigin: "http://localhost:6274",
		ReRegisterOnInvalidClient: true,
	}
}

// All is every profile, in the order docs/clients.md lists them.
func All() []Profile {
	return []Profile{ClaudeAI(), ChatGPT(), ClaudeCode(), VSCode(), Cursor(), Codex(), MCPInspector()}
}

// DocumentHandler serves the profiles' metadata documents and key sets over whatever server it is mounted on (an
// https test server): each document's client_id is the URL it is served at.
func DocumentHandler(profiles []Profile) http.Handler {
	mux := http.NewServeMux()
	for _, p := range profiles {
		if p.Document != nil {
			mux.HandleFunc("GET "+p.DocumentPath, func(w http.ResponseWriter, r *http.Request) {
				base := "https://" + r.Host
				serveJSON(w, p.Document(base+p.DocumentPath, base+p.KeysPath))
			})
		}
		if p.Signer != nil && p.KeysPath != "" {
			mux.HandleFunc("GET "+p.KeysPath, func(w http.ResponseWriter, r *http.Request) {
				serveJSON(w, map[string]any{"keys": []any{publicJWK(p)}})
			})
		}
	}
	return mux
}

func serveJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	_ = json.NewEncoder(w).Encode(v)
}
