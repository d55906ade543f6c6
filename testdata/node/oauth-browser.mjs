// What an MCP application does around the TypeScript SDK's OAuth client: an OAuthClientProvider that keeps
// everything in memory, and a headless browser (fetch) that follows the authorization URL through the sign-in
// choice, the identity provider (the fake GitHub, or an OpenID provider such as Hydra, whose login and consent app
// redirects straight on) and the consent page. Shared by e2e-client.mjs and stepup-client.mjs.

export const redirectUrl = 'http://127.0.0.1:39999/callback';

// Provider is the SDK's OAuthClientProvider, in memory. clientName names the client at registration.
export class Provider {
  constructor(clientName) {
    this.clientName = clientName;
    this.state_ = Math.random().toString(36).slice(2);
  }
  get redirectUrl() { return redirectUrl; }
  get clientMetadataUrl() { return process.env.CLIENT_METADATA_URL; }
  get clientMetadata() {
    return {
      client_name: this.clientName, redirect_uris: [redirectUrl], token_endpoint_auth_method: 'none',
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

// Secrets the browser handles besides the tokens: the identity provider's codes (GitHub's, an OpenID provider's),
// the authorization codes, cookie values; a test checks that no log recorded one.
export const seen = { githubCodes: [], oidcCodes: [], codes: [], cookies: [] };

// browse follows an authorization URL like a browser: redirects, cookies, the sign-in choice (LOGIN_PROVIDER names
// the one to take, "Continue with <name>", else the first), and the consent page, answered with answer ("approve"
// or "deny"). It returns the authorization response's parameters, its code or error, and the consent page's list of
// scopes as shown.
export async function browse(start, state, answer = 'approve') {
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
      if (v && v.length >= 16) seen.cookies.push(v); // shorter values are not secrets (flags, names)
    }
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location'), url);
      if (next.pathname === '/github/callback' && next.searchParams.get('code')) seen.githubCodes.push(next.searchParams.get('code'));
      if (/^\/oidc\/[^/]+\/callback$/.test(next.pathname) && next.searchParams.get('code')) seen.oidcCodes.push(next.searchParams.get('code'));
      if (next.toString().startsWith(redirectUrl)) {
        if (next.searchParams.get('state') !== state) throw new Error('state not carried through');
        const code = next.searchParams.get('code');
        if (code) seen.codes.push(code);
        return {
          params: next.searchParams, code, scopes,
          error: next.searchParams.get('error'), errorDescription: next.searchParams.get('error_description'),
        };
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
    if (choices.length > 0) {
      const want = process.env.LOGIN_PROVIDER;
      const choice = want ? choices.find((c) => c[2] === want) : choices[0];
      if (!choice) throw new Error(`no sign-in option ${want} at ${url}`);
      url = new URL(choice[1].replaceAll('&amp;', '&'), url).toString();
      init = {};
      continue;
    }
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

// authorized follows the authorization URL, approving, and returns its code; an error response fails.
export async function authorized(start, state) {
  const res = await browse(start, state, 'approve');
  if (res.error) throw new Error(`authorization failed: ${res.errorDescription ?? res.error}`);
  return res.code;
}
