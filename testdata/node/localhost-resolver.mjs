// Loaded with `node --import`: resolves localhost and every *.localhost name to 127.0.0.1 for fetch, as browsers do
// (RFC 6761), so the subdomain layout of the dev gateway (http://<service>.localhost:PORT/mcp) works without
// /etc/hosts entries.
import dns from 'node:dns';
import { Agent, setGlobalDispatcher } from 'undici';

const lookup = (hostname, options, callback) => {
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) {
    return options.all ? callback(null, [{ address: '127.0.0.1', family: 4 }]) : callback(null, '127.0.0.1', 4);
  }
  return dns.lookup(hostname, options, callback);
};
setGlobalDispatcher(new Agent({ connect: { lookup } }));
