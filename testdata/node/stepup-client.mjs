// Step-up authorization as an MCP application does it with the TypeScript SDK: it authorizes (401, consent, tokens),
// calls a tool the server's policy allows only with a scope the token lacks, meets the 403 insufficient_scope, lets
// the SDK authorize again for the union of its scopes and the challenged ones, has the user answer the consent page,
// and calls the tool again. The browser part is e2e-client.mjs's, driven headlessly with fetch.
// Usage: node stepup-client.mjs <mcp-url> <tool> [json-args]
// SDK=1 uses the 1.x SDK (@modelcontextprotocol/sdk), else the 2.x client package (@modelcontextprotocol/client).
// STEPUP_ANSWER=deny has the user refuse the step-up consent (the first consent is approved).
// Prints one JSON object: the scope of each token, the step-up authorization URL, the consent page's scope list,
// the call's result, or the error that ended it.
const v1 = process.env.SDK === '1';
const sdk = v1
  ? {
    ...(await import('@modelcontextprotocol/sdk/client/index.js')),
    ...(await import('@modelcontextprotocol/sdk/client/streamableHttp.js')),
    ...(await import('@modelcontextprotocol/sdk/client/auth.js')),
  }
  : await import('@modelcontextprotocol/client');
const { Client, StreamableHTTPClientTransport, UnauthorizedError } = sdk;

const [mcpUrl, tool, args = '{}'] = process.argv.slice(2);
const redirectUrl = 'http://127.0.0.1:39999/callback';

class Provider {
  constructor() { this.state_ = Math.random().toString(36).slice(2); }
  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return {
      client_name: 'Gateway step-up test', redirect_uris: [redirectUrl], token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    };
  }
  state() { return this.state_; }
  clientInformation() { return this.client; }
  saveClientInformation(c) { this.client = c; }
  tokens() { return this.tokens_; }
  saveTokens(t) { this.tokens_ = t; }
  redirectToAuthorization(url) { this.authUrl = url; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
  invalidateCredentials(scope) { if (scope === 'all' || scope === 'tokens') this.tokens_ = undefined; }
}

// browse follows an authorization URL like a browser (redirects, cookies) and answers the consent page with
// answer; it returns the code, and the consent page's list of scopes as shown.
async function browse(start, state, answer) {
  const cookies = new Map();
  let url = start.toString();
  let init = {};
  let scopes;
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
    }
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location'), url);
      if (next.toString().startsWith(redirectUrl)) {
        if (next.searchParams.get('state') !== state) throw new Error('state not carried through');
        return { params: next.searchParams, code: next.searchParams.get('code'), error: next.searchParams.get('error'), scopes };
      }
      url = next.toString();
      init = {};
      continue;
    }
    const page = await res.text();
    if (res.status !== 200) throw new Error(`authorization stopped at ${url}: HTTP ${res.status}`);
    const action = page.match(/<form method="post" action="([^"]+)"/);
    if (!action) throw new Error(`no consent form at ${url}`);
    const list = page.match(/<ul>([\s\S]*?)<\/ul>/);
    scopes = list ? list[1].replace(/<\/li>/g, '\n').replace(/<[^>]+>/g, '').replace(/&#39;/g, "'").trim().split('\n') : [];
    const form = new URLSearchParams();
    for (const m of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) form.set(m[1], m[2]);
    form.set('action', answer);
    url = new URL(action[1], url).toString();
    init = { method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
  }
  throw new Error('authorization did not finish');
}

// finish hands the authorization response to the transport: the 2.x client checks its iss (RFC 9207) too.
const finish = (transport, res) => (v1 ? transport.finishAuth(res.code) : transport.finishAuth(res.params));

const out = { sdk: v1 ? '1' : '2' };
const provider = new Provider();
let transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
let client = new Client({ name: 'e2e-stepup', version: '1.0.0' });
try {
  await client.connect(transport);
  throw new Error('the gateway let an unauthenticated client in');
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
}
const first = await browse(provider.authUrl, provider.state_, 'approve');
await finish(transport, first);
out.firstScope = provider.tokens_.scope;
out.firstConsent = first.scopes;

transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
client = new Client({ name: 'e2e-stepup', version: '1.0.0' });
await client.connect(transport);
out.tools = (await client.listTools()).tools.map((x) => x.name);
provider.authUrl = undefined;
try {
  out.result = await client.callTool({ name: tool, arguments: JSON.parse(args) });
  out.withoutStepUp = true;
} catch (e) {
  if (!(e instanceof UnauthorizedError)) {
    out.error = String(e?.message ?? e);
  } else {
    // The SDK met the 403 and sent the user to authorize the union: what an application does after any redirect.
    out.stepUpAuthorizationUrl = provider.authUrl.toString();
    const answer = process.env.STEPUP_ANSWER ?? 'approve';
    const second = await browse(provider.authUrl, provider.state_, answer);
    out.stepUpConsent = second.scopes;
    if (second.code) {
      await finish(transport, second);
      out.stepUpScope = provider.tokens_.scope;
    } else {
      out.stepUpError = second.error;
    }
    try {
      out.result = await client.callTool({ name: tool, arguments: JSON.parse(args) });
    } catch (e2) {
      out.error = String(e2?.message ?? e2);
      out.errorName = e2?.constructor?.name;
    }
  }
}
await client.close().catch(() => {});
console.log(JSON.stringify(out));
