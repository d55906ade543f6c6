// Step-up authorization as an MCP application does it with the TypeScript SDK: it authorizes (401, consent, tokens),
// calls a tool the server's policy allows only with a scope the token lacks, meets the 403 insufficient_scope, lets
// the SDK authorize again for the union of its scopes and the challenged ones, has the user answer the consent page,
// and calls the tool again. The browser part is oauth-browser.mjs's, driven headlessly with fetch.
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
const { Provider, browse } = await import('./oauth-browser.mjs');

// The 2.x client drops tokens the server no longer takes, so that it authorizes again.
class StepUpProvider extends Provider {
  invalidateCredentials(scope) { if (scope === 'all' || scope === 'tokens') this.tokens_ = undefined; }
}

const [mcpUrl, tool, args = '{}'] = process.argv.slice(2);

// finish hands the authorization response to the transport: the 2.x client checks its iss (RFC 9207) too.
const finish = (transport, res) => (v1 ? transport.finishAuth(res.code) : transport.finishAuth(res.params));

const out = { sdk: v1 ? '1' : '2' };
const provider = new StepUpProvider('Gateway step-up test');
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
