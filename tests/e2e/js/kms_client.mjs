// The integration guide's JavaScript request code, run against our server by the e2e suite.
//
// `createSignedRequest` and `callKMSAPI` (imported from guide_request.mjs) are copied from the guide (section
// "JavaScript 基础请求函数") with exactly ONE change, marked "CHANGED": the guide passes
// `body: signedRequest.body` on every method, which is '' on GET, and `fetch` refuses any body on
// GET ("Request with GET/HEAD method cannot have body"), in browsers and in Node alike. API.md §1
// allows tests this one change.
// Everything else, including `fetch(signedRequest.endpoint.href + signedRequest.path)`, which
// yields a `//rustfs/admin/v3/...` URL, is the guide's and is what the server must accept.
//
// Protocol, for tests/e2e/kms_clients.py: one JSON command per line on stdin (or one command as
// the first argument), one JSON answer per line on stdout.
//
//   {"op": "call", "endpoint": "http://127.0.0.1:PORT", "accessKeyId": "...",
//    "secretAccessKey": "...", "method": "POST", "path": "/kms/keys", "body": {...}}
//   {"op": "list_all", ..., "limit": "2"}       the guide's pagination loop over GET /kms/keys
//
// Answer: {"ok": true, "data": <what callKMSAPI returned>} or {"ok": false, "thrown": "<message
// of what it threw>"}, plus "exchanges": every HTTP exchange fetch made (URL, request headers,
// status, response headers and body text), recorded by wrapping the global fetch, so that tests
// can assert statuses without changing the guide's code.

import readline from 'node:readline';

// The guide's createSignedRequest and callKMSAPI, with its one allowed change, live in
// guide_request.mjs; this client sets awsConfig's endpoint and credentials per command.
import { awsConfig, callKMSAPI } from './guide_request.mjs';

// The guide's "列出所有密钥（分页）" loop, with the page size as a parameter.
async function listAllKeys(limit) {
  let allKeys = [];
  let marker = null;

  do {
    const params = new URLSearchParams({ limit });
    if (marker) params.append('marker', marker);

    const keysList = await callKMSAPI('GET', `/kms/keys?${params}`);
    allKeys.push(...keysList.keys);
    marker = keysList.next_marker;
  } while (marker);

  return allKeys;
}

// Records every exchange; the guide's code calls the global fetch, so this sees all of them.
let exchanges = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, options = {}) => {
  const exchange = {
    url: String(url),
    method: options.method,
    request_headers: { ...options.headers },
    request_body_length: options.body === undefined ? null : String(options.body).length
  };
  exchanges.push(exchange);
  const response = await realFetch(url, options);
  exchange.status = response.status;
  exchange.response_headers = Object.fromEntries(response.headers);
  exchange.text = await response.clone().text();
  return response;
};

async function execute(command) {
  awsConfig.endpoint = command.endpoint;
  awsConfig.accessKeyId = command.accessKeyId;
  awsConfig.secretAccessKey = command.secretAccessKey;
  awsConfig.region = command.region ?? 'us-east-1';

  switch (command.op) {
    case 'call':
      return callKMSAPI(command.method, command.path, command.body ?? null);
    case 'list_all':
      return listAllKeys(command.limit ?? '50');
    default:
      throw new Error(`unknown op ${JSON.stringify(command.op)}`);
  }
}

async function answer(line) {
  exchanges = [];
  let reply;
  try {
    const command = JSON.parse(line);
    try {
      reply = { ok: true, data: await execute(command) };
    } catch (err) {
      reply = { ok: false, thrown: String(err?.message ?? err) };
    }
  } catch (err) {
    reply = { ok: false, thrown: `bad command: ${err.message}` };
  }
  reply.exchanges = exchanges;
  return JSON.stringify(reply);
}

if (process.argv.length > 2) {
  console.log(await answer(process.argv[2]));
} else {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    console.log(await answer(line));
  }
}
