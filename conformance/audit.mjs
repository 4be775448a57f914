#!/usr/bin/env node
// GraphQL-over-HTTP conformance audit of a running server, using graphql-http's
// own server audits.
//
//   node conformance/audit.mjs http://127.0.0.1:8080/graphql
//
// Prints one line per audit (id, result, name; the reason when it did not pass),
// a breakdown, and finally exactly "N passed, M failed".
//
// Exit code 1 when:
//   - any MUST audit fails (status "error"), or an audit cannot run at all
//     (network failure, timeout: graphql-http then throws instead of reporting);
//   - any SHOULD audit fails (status "warn") whose id is not a key of
//     should-deviations.json beside this script ({ "<id>": "<reason>" }).
// MAY audits that are not met (status "notice") never fail the run.
// M counts exactly the audits that make the run fail; N is all the others.

import { readFile } from 'node:fs/promises';
import { serverAudits } from 'graphql-http';

const AUDIT_TIMEOUT_MS = 10_000;

function usage(message) {
  console.error(`${message}\nusage: node audit.mjs <graphql endpoint url, e.g. http://127.0.0.1:8080/graphql>`);
  process.exit(2);
}

const url = process.argv[2];
if (!url) usage('missing url');
try {
  new URL(url);
} catch {
  usage(`not a URL: ${url}`);
}

const deviationsPath = new URL('./should-deviations.json', import.meta.url);
let deviations;
try {
  deviations = JSON.parse(await readFile(deviationsPath, 'utf8'));
} catch (err) {
  usage(`cannot read ${deviationsPath.pathname}: ${err.message}`);
}
if (deviations === null || typeof deviations !== 'object' || Array.isArray(deviations)) {
  usage('should-deviations.json must be an object mapping audit id to reason');
}

// Every request gets a deadline, so a hung server fails the audit instead of the CI job's clock.
const fetchFn = (input, init = {}) =>
  fetch(input, { ...init, signal: AbortSignal.timeout(AUDIT_TIMEOUT_MS) });

const audits = serverAudits({ url, fetchFn });
const seen = new Set();
const counts = { ok: 0, notice: 0, allowed: 0, warn: 0, error: 0 };
let passed = 0;
let failed = 0;

// One at a time: deterministic output and no burst against a dev server.
for (const { id, name, fn } of audits) {
  seen.add(id);
  let result;
  try {
    result = await fn();
  } catch (err) {
    // graphql-http throws (rather than reporting) only on fatal problems.
    result = { id, name, status: 'error', reason: `audit could not run: ${err?.message ?? err}` };
  }

  let verdict = result.status;
  let fails;
  let detail = '';
  switch (result.status) {
    case 'ok':
      fails = false;
      counts.ok++;
      if (Object.hasOwn(deviations, id)) detail = ' -- listed in should-deviations.json but passes now';
      break;
    case 'notice': // a MAY that is not met
      fails = false;
      counts.notice++;
      detail = ` -- ${result.reason}`;
      break;
    case 'warn': // a SHOULD that is not met
      if (Object.hasOwn(deviations, id)) {
        fails = false;
        counts.allowed++;
        verdict = 'warn (allowed)';
        detail = ` -- ${result.reason}; deviation: ${deviations[id]}`;
      } else {
        fails = true;
        counts.warn++;
        detail = ` -- ${result.reason}`;
      }
      break;
    default: // 'error': a MUST that is not met, or a fatal problem
      fails = true;
      counts.error++;
      detail = ` -- ${result.reason}`;
  }
  if (result.response?.status !== undefined && result.status !== 'ok') {
    detail += ` (HTTP ${result.response.status})`;
  }
  if (fails) failed++;
  else passed++;
  console.log(`${id} ${verdict}: ${name}${detail}`);
}

for (const id of Object.keys(deviations)) {
  if (!seen.has(id)) {
    console.log(`note: should-deviations.json lists ${id}, which is not an audit of this graphql-http version`);
  }
}
console.log(
  `\nsummary: ${counts.ok} ok, ${counts.notice} MAY not met (notice), ` +
    `${counts.allowed} SHOULD not met but allowed by should-deviations.json, ` +
    `${counts.warn} SHOULD not met, ${counts.error} MUST not met or not runnable`,
);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
