// Connects the TypeScript SDK's Streamable HTTP client to the URL in argv[2] and calls the echo tool.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const client = new Client({ name: 'streamproxy-test', version: '1.0.0' });
await client.connect(new StreamableHTTPClientTransport(new URL(process.argv[2])));
const { tools } = await client.listTools();
if (!tools.some((t) => t.name === 'echo')) throw new Error('no echo tool');
const result = await client.callTool({ name: 'echo', arguments: { message: 'from the TypeScript SDK' } });
console.log(result.content[0].text);
await client.close();
