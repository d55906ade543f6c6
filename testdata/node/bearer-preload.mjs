// Loaded with `node --import` before a program that cannot send a bearer token (the MCP conformance runner): every
// HTTP request made through undici (fetch, and undici's own request) gets `Authorization: Bearer $MCP_BEARER_TOKEN`
// unless it already has an Authorization header.
import { Agent, setGlobalDispatcher } from 'undici';

const token = process.env.MCP_BEARER_TOKEN;
if (!token) throw new Error('MCP_BEARER_TOKEN is not set');

const withBearer = (dispatch) => (opts, handler) => {
  const headers = opts.headers ?? {};
  const list = Array.isArray(headers) ? headers : Object.entries(headers).flat();
  const has = list.some((v, i) => i % 2 === 0 && String(v).toLowerCase() === 'authorization');
  if (!has) {
    opts = { ...opts, headers: Array.isArray(headers) ? [...headers, 'authorization', `Bearer ${token}`]
      : { ...headers, authorization: `Bearer ${token}` } };
  }
  return dispatch(opts, handler);
};
setGlobalDispatcher(new Agent().compose(withBearer));
