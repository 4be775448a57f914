#!/usr/bin/env node
// GraphiQL as a person uses it, in headless Chromium against a running server:
// the page loads with no request leaving the server's origin; a query with
// `Authorization` in the header editor resolves `me`; a subscription with the
// same header receives a message sent over HTTP.
//
//   node conformance/graphiql-e2e.mjs http://127.0.0.1:8080 [/usr/bin/chromium]
//
// Prints "N passed, M failed" last; exit code 1 on any failure.

import { chromium } from 'playwright-core';

const [base, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
if (!base) {
  console.error('usage: node graphiql-e2e.mjs <server base url> [chromium path]');
  process.exit(2);
}

async function gql(query, variables, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await res.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

const results = [];
const check = (name, ok, detail = '') => {
  results.push(ok);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
};

const name = `gq_${Math.random().toString(16).slice(2, 10)}`;
const { register } = await gql(
  'mutation($i: RegisterInput!) { register(input: $i) { accessToken } }',
  { i: { username: name, email: `${name}@example.com`, password: 'graphiql e2e pass' } },
);
const token = register.accessToken;
const room = (await gql('mutation { createRoom(input: { name: "graphiql" }) { id } }', {}, token)).createRoom.id;

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const timer = setTimeout(() => { console.error('timed out'); process.exit(1); }, 60_000);
try {
  const origin = new URL(base);
  const foreign = [];
  let page = null;
  const response = () => page.evaluate(() => document.querySelector('.graphiql-response')?.innerText ?? '');
  // A fresh page per run whose editors (kept by GraphiQL in localStorage) are
  // set before any script of the page runs; then press run.
  const open = async (query) => {
    if (page) await page.close();
    page = await browser.newPage();
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (url.protocol !== 'data:' && url.host !== origin.host) foreign.push(req.url());
    });
    await page.addInitScript(([q, h]) => {
      localStorage.removeItem('graphiql:tabState');
      localStorage.setItem('graphiql:query', q);
      localStorage.setItem('graphiql:headers', h);
    }, [query, JSON.stringify({ Authorization: `Bearer ${token}` })]);
    await page.goto(`${base}/`);
    await page.waitForSelector('.graphiql-execute-button', { timeout: 15_000 });
  };
  const run = async (query) => {
    await open(query);
    await page.click('.graphiql-execute-button');
  };

  await open('{ __typename }');
  check('GraphiQL loads from the server alone', foreign.length === 0, foreign.slice(0, 3).join(' '));

  await run('query Me { me { username } }');
  const me = await page
    .waitForFunction((n) => (document.querySelector('.graphiql-response')?.innerText ?? '').includes(n), name, { timeout: 10_000 })
    .then(() => true, () => false);
  check('a query sends the header editor\'s Authorization', me, (await response()).replace(/\s+/g, ' ').slice(0, 100));

  await run(`subscription Live { messageAdded(roomId: "${room}") { content } }`);
  let live = false;
  // No "subscribed" signal reaches the page: send until one arrives (5 at most).
  for (let i = 0; i < 5 && !live; i += 1) {
    await gql('mutation($r: ID!, $c: String!) { sendMessage(input: { roomId: $r, content: $c }) { id } }',
      { r: room, c: `from-http-${i}` }, token);
    live = await page
      .waitForFunction(() => (document.querySelector('.graphiql-response')?.innerText ?? '').includes('from-http-'), null, { timeout: 1_000 })
      .then(() => true, () => false);
  }
  check('a subscription authenticates with the header and receives a message', live,
    (await response()).replace(/\s+/g, ' ').slice(0, 100));
} finally {
  clearTimeout(timer);
  await browser.close();
}
const failed = results.filter((ok) => !ok).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
