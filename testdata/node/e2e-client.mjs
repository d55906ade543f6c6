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

const [mcpUrl, tool = 'echo', args = '{"message":"hello through the gateway"}', spoof] = process.argv.slice(2);
const redirectUrl = 'http://127.0.0.1:39999/callback';

class Provider {
  constructor() { this.state_ = Math.random().toString(36).slice(2); }
  get redirectUrl() { return redirectUrl; }
  get clientMetadataUrl() { return process.env.CLIENT_METADATA_URL; }
  get clientMetadata() {
    return {
      client_name: 'Gateway end-to-end test', redirect_uris: [redirectUrl], token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    };
  }
  state() { return this.state_; }
  clientInformation() { return this.client; }
  saveClientInformation(c) { this.client = c; }
  tokens() { return this.tokens_; }
  saveTokens(t) { this.tokens_ = t; this.saved = (this.saved ?? 0) + 1; }
  redirectToAuthorization(url) { this.authUrl = url; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

// Secrets the browser part handles besides the tokens: the identity provider's codes (GitHub's, an OpenID
// provider's), the authorization code, cookie values.
const seen = { githubCodes: [], oidcCodes: [], codes: [], cookies: [] };

// browse follows the authorization URL like a browser: redirects, cookies, and the consent form (approved).
async function browse(start, state) {
  const cookies = new Map();
  let url = start.toString();
  let init = {};
  for (let step = 0; step < 16; step++) {
    const headers = { ...(init.headers ?? {}) };
    const host = new URL(url).host;
    if (cookies.has(host)) headers.cookie = [...cookies.get(host)].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const [k, v] = pair.split('=');
      if (!cookies.has(host)) cookies.set(host, new Map());
      cookies.get(host).set(k.trim(), v);
      if (v && v.length >= 16) seen.cookies.push(v); // shorter values are not secrets (flags, names)
    }
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location'), url);
      if (next.pathname === '/github/callback' && next.searchParams.get('code')) seen.githubCodes.push(next.searchParams.get('code'));
      if (/^\/oidc\/[^/]+\/callback$/.test(next.pathname) && next.searchParams.get('code')) seen.oidcCodes.push(next.searchParams.get('code'));
      if (next.toString().startsWith(redirectUrl)) {
        if (next.searchParams.get('code')) seen.codes.push(next.searchParams.get('code'));
        if (next.searchParams.get('error')) throw new Error(`authorization failed: ${next.searchParams.get('error_description')}`);
        if (next.searchParams.get('state') !== state) throw new Error('state not carried through');
        return next.searchParams.get('code');
      }
      url = next.toString();
      init = {};
      continue;
    }
    const page = await res.text();
    if (res.status !== 200) {
      const text = page.replace(/<(style|title)>[\s\S]*?<\/\1>/g, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
      throw new Error(`authorization stopped at ${url}: HTTP ${res.status}: ${text.slice(0, 600)}`);
    }
    const choices = [...page.matchAll(/<a class="provider" href="([^"]+)">Continue with ([^<]+)<\/a>/g)];
    if (choices.length > 0) { // several ways to sign in: the one LOGIN_PROVIDER names, else the first
      const want = process.env.LOGIN_PROVIDER;
      const choice = want ? choices.find((c) => c[2] === want) : choices[0];
      if (!choice) throw new Error(`no sign-in option ${want} at ${url}`);
      url = new URL(choice[1].replaceAll('&amp;', '&'), url).toString();
      init = {};
      continue;
    }
    const action = page.match(/<form method="post" action="([^"]+)"/);
    if (!action) throw new Error(`no consent form at ${url}`);
    const form = new URLSearchParams();
    for (const m of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) form.set(m[1], m[2]);
    form.set('action', 'approve');
    url = new URL(action[1], url).toString();
    init = { method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
  }
  throw new Error('authorization did not finish');
}

function transport(provider) {
  const headers = spoof ? { 'X-User-Id': spoof, 'X-User-Name': 'spoofed' } : {};
  return new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, requestInit: { headers } });
}

const provider = new Provider();
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
const code = await browse(authUrl, provider.state_);
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
    const p = new Provider();
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
