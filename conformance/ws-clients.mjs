#!/usr/bin/env node
// Subscriptions end to end with two real client libraries, one per subprotocol:
//   - graphql-ws                  (createClient; subprotocol "graphql-transport-ws")
//   - subscriptions-transport-ws  (SubscriptionClient; legacy subprotocol "graphql-ws")
//
//   node conformance/ws-clients.mjs http://127.0.0.1:8080/graphql ws://127.0.0.1:8080/graphql/ws
//
// For each client: register users A and B over HTTP, A creates a room, B joins
// it, B subscribes to messageAdded with connection params
// { authorization: "Bearer <token>" }, A sends a message over HTTP, and B must
// receive it (content and sender). Once B's socket is acknowledged, a message is
// sent every second (new content each time, at most 5) until one arrives, which
// tolerates the server activating the subscription just after the ack.
// 20 s per client. Prints "N passed, M failed" last; exit code 1 on any failure.

import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import subscriptionsTransportWs from 'subscriptions-transport-ws';

const { SubscriptionClient } = subscriptionsTransportWs;

const CLIENT_TIMEOUT_MS = 20_000;
const HTTP_TIMEOUT_MS = 10_000;
const SEND_ATTEMPTS = 5;
const ATTEMPT_WAIT_MS = 1_000;

const SUBSCRIPTION = `subscription($r: ID!) {
  messageAdded(roomId: $r) { id content sender { username } }
}`;

const [httpUrl, wsUrl] = process.argv.slice(2);
if (!httpUrl || !wsUrl) {
  console.error(
    'usage: node ws-clients.mjs <http url> <ws url>\n' +
      '  e.g. node ws-clients.mjs http://127.0.0.1:8080/graphql ws://127.0.0.1:8080/graphql/ws',
  );
  process.exit(2);
}

const hex = (bytes) => randomBytes(bytes).toString('hex');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function describe(err) {
  if (err === undefined || err === null) return String(err);
  if (err instanceof Error) return err.message;
  // A WebSocket close event (graphql-ws hands these to sink.error).
  if (typeof err === 'object' && 'code' in err && 'reason' in err) {
    return `socket closed with code ${err.code}${err.reason ? ` (${err.reason})` : ''}`;
  }
  // GraphQL errors: a list of { message, extensions: { code } }.
  if (Array.isArray(err)) return err.map(describe).join('; ');
  if (typeof err === 'object' && typeof err.message === 'string') {
    const code = err.extensions?.code;
    return code ? `${err.message} [${code}]` : err.message;
  }
  return JSON.stringify(err);
}

/** POSTs one GraphQL operation; returns `data` or throws with the errors. */
async function gql(query, variables, token, signal) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json, application/json',
  };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(httpUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
    signal: signal
      ? AbortSignal.any([signal, AbortSignal.timeout(HTTP_TIMEOUT_MS)])
      : AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status}: response is not JSON: ${text.slice(0, 200)}`);
  }
  if (body.errors?.length) throw new Error(`HTTP ${res.status}: ${describe(body.errors)}`);
  if (!res.ok || !body.data) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  return body.data;
}

async function register(signal) {
  const username = `cf_${hex(6)}`; // 15 chars of [A-Za-z0-9_]
  const data = await gql(
    `mutation($input: RegisterInput!) {
      register(input: $input) { accessToken user { id } }
    }`,
    { input: { username, email: `${username}@example.com`, password: `pw-${hex(12)}` } },
    undefined,
    signal,
  );
  return { username, token: data.register.accessToken, id: data.register.user.id };
}

/**
 * Client adapters. Each starts a subscription and reports through `events`:
 * connected() once the server acknowledged connection_init, data(payload) per
 * result, fail(error) on anything that ends the subscription early.
 * Returns a function that tears everything down.
 */
const CLIENTS = [
  {
    name: 'graphql-ws (graphql-transport-ws)',
    subscribe({ token, variables }, events) {
      const client = createClient({
        url: wsUrl,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${token}` },
        lazy: true,
        retryAttempts: 0, // surface the first failure instead of reconnecting
        on: { connected: () => events.connected() },
      });
      const unsubscribe = client.subscribe(
        { query: SUBSCRIPTION, variables },
        {
          next: (payload) => events.data(payload),
          error: (err) => events.fail(err),
          complete: () => events.fail(new Error('subscription completed before the message arrived')),
        },
      );
      return () => {
        unsubscribe();
        return client.dispose();
      };
    },
  },
  {
    name: 'subscriptions-transport-ws (legacy graphql-ws)',
    subscribe({ token, variables }, events) {
      let closing = false;
      const client = new SubscriptionClient(
        wsUrl,
        {
          reconnect: false,
          lazy: false,
          connectionParams: { authorization: `Bearer ${token}` },
          // Called with no argument on connection_ack, with the payload on connection_error.
          connectionCallback: (error) =>
            error ? events.fail(new Error(`connection_error: ${describe(error)}`)) : events.connected(),
        },
        WebSocket,
      );
      client.onError((err) => events.fail(new Error(`socket error: ${err?.message ?? describe(err)}`)));
      client.onDisconnected(() => {
        if (!closing) events.fail(new Error('socket closed by the server'));
      });
      const subscription = client.request({ query: SUBSCRIPTION, variables }).subscribe({
        next: (payload) => events.data(payload),
        error: (err) => events.fail(err),
        complete: () => events.fail(new Error('subscription completed before the message arrived')),
      });
      return () => {
        closing = true;
        subscription.unsubscribe();
        client.close();
      };
    },
  },
];

// A library throwing from inside a socket callback (e.g. the legacy client on a
// message type it does not know) must fail the client under test, not crash us.
let failCurrent = null;
process.on('uncaughtException', (err) => {
  if (failCurrent) failCurrent(new Error(`uncaught: ${err?.message ?? err}`));
  else {
    console.error(err);
    process.exit(1);
  }
});

/** Runs one client's scenario; `signal` aborts everything (the per-client deadline). */
async function runClient(client, signal) {
  const a = await register(signal);
  const b = await register(signal);
  const roomId = (
    await gql(
      `mutation($input: CreateRoomInput!) { createRoom(input: $input) { id } }`,
      { input: { name: `conformance ${hex(4)}` } },
      a.token,
      signal,
    )
  ).createRoom.id;
  await gql(`mutation($r: ID!) { joinRoom(roomId: $r) { id } }`, { r: roomId }, b.token, signal);

  let failed = null;
  let onFail = () => {};
  let onConnected = () => {};
  let isConnected = false;
  const received = []; // { content, sender }
  let onReceived = () => {};
  const events = {
    connected() {
      isConnected = true;
      onConnected();
    },
    data(payload) {
      if (payload?.errors?.length) return events.fail(payload.errors);
      const message = payload?.data?.messageAdded;
      if (!message) return events.fail(new Error(`unexpected payload ${JSON.stringify(payload)}`));
      received.push({ content: message.content, sender: message.sender?.username });
      onReceived();
    },
    fail(err) {
      if (!failed) {
        failed = err instanceof Error ? err : new Error(describe(err));
        onFail(failed);
      }
    },
  };
  failCurrent = events.fail;
  const onAbort = () => events.fail(signal.reason);
  signal.addEventListener('abort', onAbort);

  // Resolves when `ready()` is true, rejects as soon as the subscription fails.
  const until = (ready, timeoutMs) =>
    new Promise((resolve, reject) => {
      const timer = timeoutMs === undefined ? null : setTimeout(() => resolve(false), timeoutMs);
      onFail = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      onConnected = onReceived = () => {
        if (ready()) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      if (failed) reject(failed);
      else if (ready()) {
        clearTimeout(timer);
        resolve(true);
      }
    });

  let teardown = () => {};
  try {
    teardown = client.subscribe({ token: b.token, variables: { r: roomId } }, events);
    await until(() => isConnected);
    const sent = [];
    for (let attempt = 1; attempt <= SEND_ATTEMPTS; attempt++) {
      const content = `hello via ${client.name} #${attempt} ${hex(4)}`;
      sent.push(content);
      await gql(
        `mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }`,
        { input: { roomId, content } },
        a.token,
        signal,
      );
      const arrived = () => received.some((m) => sent.includes(m.content));
      if (await until(arrived, ATTEMPT_WAIT_MS)) {
        const message = received.find((m) => sent.includes(m.content));
        if (message.sender !== a.username) {
          throw new Error(`message arrived with sender ${message.sender}, expected ${a.username}`);
        }
        const strangers = received.filter((m) => !sent.includes(m.content));
        if (strangers.length) throw new Error(`received messages nobody sent: ${JSON.stringify(strangers)}`);
        return `received after ${attempt} send(s)`;
      }
    }
    throw new Error(`none of ${SEND_ATTEMPTS} messages reached the subscriber`);
  } finally {
    signal.removeEventListener('abort', onAbort);
    failCurrent = null;
    onFail = () => {};
    try {
      await teardown();
    } catch {
      // Already broken: the verdict stands.
    }
  }
}

let passed = 0;
let failedCount = 0;
for (const client of CLIENTS) {
  const started = Date.now();
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new Error(`timed out after ${CLIENT_TIMEOUT_MS / 1000} s`)),
    CLIENT_TIMEOUT_MS,
  );
  try {
    const note = await runClient(client, deadline.signal);
    passed++;
    console.log(`ok   ${client.name}: ${note} in ${Date.now() - started} ms`);
  } catch (err) {
    failedCount++;
    const reason = deadline.signal.aborted ? deadline.signal.reason : err;
    console.log(`FAIL ${client.name}: ${describe(reason)}`);
  } finally {
    clearTimeout(timer);
  }
}
console.log(`${passed} passed, ${failedCount} failed`);
process.exit(failedCount > 0 ? 1 : 0);
