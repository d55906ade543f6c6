// A real OAuth-capable MCP client (the TypeScript SDK) that starts from nothing but an MCP URL: it gets a 401,
// discovers the metadata, registers, authorizes with PKCE and resource, logs in through the identity provider (the
// fake GitHub, or an OpenID provider such as Hydra, whose login and consent app redirects straight on), approves the
// consent page, gets tokens, initializes, lists and calls tools, and refreshes. The browser part is driven
// headlessly with fetch. Usage: node e2e-client.mjs <mcp-url> [tool] [json-args] [spoofed-user-id]
// When the server offers several ways to sign in, LOGIN_PROVIDER names the one to choose ("Continue with <name>").
// With CLIENT_METADATA_URL set, the client identifies itself by that Client ID Metadata Document instead of
// registering (the SDK does so when the authorization server advertises client_id_metadata_document_supported).
// With REFRESH_RACE set, it then replays what clients with several threads, processes or egress nodes do: two copies
// of it hold the same refresh token and refresh at once (each the SDK's own refresh, on a 401), and a third one
// with the same token a second later; each then calls the tool with the access token it got.
// Prints one JSON object: the tool result, the tools listed, the tokens (for the test to revoke), and every secret
// the flow handled (for the test to check that no log recorded one).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Provider, authorized, seen } from './oauth-browser.mjs';

const [mcpUrl, tool = 'echo', args = '{"message":"hello through the gateway"}', spoof] = process.argv.slice(2);
const clientName = 'Gateway end-to-end test';

function transport(provider) {
  const headers = spoof ? { 'X-User-Id': spoof, 'X-User-Name': 'spoofed' } : {};
  return new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, requestInit: { headers } });
}

const provider = new Provider(clientName);
let client = new Client({ name: 'e2e', version: '1.0.0' });
let t = transport(provider);
try {
  await client.connect(t);
  throw new Error('the gateway let an unauthenticated client in');
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
}
if (!provider.authUrl) throw new Error('no authorization URL after the 401');
const authUrl = provider.authUrl;
const code = await authorized(authUrl, provider.state_);
await t.finishAuth(code);

client = new Client({ name: 'e2e', version: '1.0.0' });
await client.connect(transport(provider));
const tools = (await client.listTools()).tools.map((x) => x.name);
const result = await client.callTool({ name: tool, arguments: JSON.parse(args) });
await client.close();

// Refresh: with a useless access token the SDK gets a 401 and refreshes with its refresh token, no browser involved.
const firstRefresh = provider.tokens_.refresh_token;
const firstAccessToken = provider.tokens_.access_token;
provider.tokens_ = { ...provider.tokens_, access_token: 'expired' };
client = new Client({ name: 'e2e', version: '1.0.0' });
await client.connect(transport(provider));
const again = await client.callTool({ name: tool, arguments: JSON.parse(args) });
await client.close();

let race;
if (process.env.REFRESH_RACE) {
  const held = provider.tokens_;
  const copy = () => {
    const p = new Provider(clientName);
    p.client = provider.client;
    p.tokens_ = { ...held, access_token: 'expired' };
    return p;
  };
  const use = async (p) => {
    const c = new Client({ name: 'e2e', version: '1.0.0' });
    await c.connect(transport(p));
    const r = await c.callTool({ name: tool, arguments: JSON.parse(args) });
    await c.close();
    return r;
  };
  const racers = [copy(), copy()];
  const results = await Promise.all(racers.map(use));
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const late = copy();
  results.push(await use(late));
  racers.push(late);
  race = {
    presented: held.refresh_token, results,
    refreshTokens: racers.map((p) => p.tokens_.refresh_token), accessTokens: racers.map((p) => p.tokens_.access_token),
  };
}

console.log(JSON.stringify({
  authorizationUrl: authUrl.toString(), tools, result, again, race,
  refreshed: provider.tokens_.refresh_token !== firstRefresh,
  clientId: provider.client.client_id, tokens: provider.tokens_,
  secrets: { ...seen, codeVerifier: provider.verifier, firstRefreshToken: firstRefresh, firstAccessToken },
}));
