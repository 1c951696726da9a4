#!/usr/bin/env node
// Verify a callbackd callback: HMAC (CONTRACT §4), Standard Webhooks, or JWT HS256.
// Node.js standard library only (node:crypto, node:fs). Usage:
//   VERIFY_SECRET=... node verify.js hmac|standard-webhooks|jwt request.http
// request.http is the raw HTTP/1.1 request. Prints ACCEPT, ACCEPT duplicate or
// REJECT: <reason>; exits 0 to accept, 1 to reject. Env: VERIFY_SECRET (required),
// VERIFY_SEEN (file of X-Callback-Ids already processed), VERIFY_NOW (unix seconds; a test
// hook to play "now" — leave unset in production).
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');

const TOLERANCE_S = 300; // refuse timestamps more than 5 minutes away from our clock

class Reject extends Error {}

const now = () => Number(process.env.VERIFY_NOW || Math.floor(Date.now() / 1000));

// Constant time; timingSafeEqual throws on different lengths, which reveal nothing secret.
function safeEqual(a, b) {
  const x = Buffer.from(a), y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function checkTimestamp(ts) {
  if (!/^\d+$/.test(String(ts))) throw new Reject('bad timestamp');
  if (Math.abs(now() - Number(ts)) > TOLERANCE_S) throw new Reject('stale timestamp');
}

// --- HMAC (CONTRACT §4) ------------------------------------------------------------------
function verifyHmac(secret, method, target, headers, body) {
  const got = headers['authorization'] || '';
  if (!got.startsWith('HMAC ')) throw new Reject('missing Authorization: HMAC');
  const id = headers['x-callback-id'] || '', ts = headers['x-callback-timestamp'] || '';
  const want = crypto.createHmac('sha256', secret)
    .update(`${id}.${ts}.${method}.${target}.`).update(body).digest('hex');
  if (!safeEqual(want, got.slice(5))) throw new Reject('bad signature');
  checkTimestamp(ts);
}

// --- Standard Webhooks ---------------------------------------------------------------------
function verifyStandardWebhooks(secret, method, target, headers, body) {
  const id = headers['webhook-id'] || '', ts = headers['webhook-timestamp'] || '';
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const want = crypto.createHmac('sha256', key).update(`${id}.${ts}.`).update(body).digest('base64');
  // During a secret rotation the header holds several "v1,<sig>", space-separated.
  const sigs = (headers['webhook-signature'] || '').split(' ')
    .filter((s) => s.startsWith('v1,')).map((s) => s.slice(3));
  if (!sigs.some((s) => safeEqual(want, s))) throw new Reject('bad signature');
  checkTimestamp(ts);
}

// --- JWT HS256 (proves the sender, not the body) ---------------------------------------------
function verifyJwt(secret, method, target, headers, body) {
  const auth = headers['authorization'] || '';
  if (!auth.startsWith('Bearer ')) throw new Reject('missing Authorization: Bearer');
  const [head, payload, sig, extra] = auth.slice(7).split('.');
  if (sig === undefined || extra !== undefined) throw new Reject('malformed token');
  let alg, claims;
  try {
    alg = JSON.parse(Buffer.from(head, 'base64url')).alg;
    claims = JSON.parse(Buffer.from(payload, 'base64url'));
  } catch { throw new Reject('malformed token'); }
  if (alg !== 'HS256') throw new Reject('unexpected alg'); // never accept "none"
  const want = crypto.createHmac('sha256', secret).update(`${head}.${payload}`).digest();
  if (!safeEqual(want, Buffer.from(sig, 'base64url'))) throw new Reject('bad signature');
  if (!Number.isInteger(claims.exp) || now() >= claims.exp) {
    throw new Reject('stale timestamp (token expired)');
  }
  checkTimestamp(claims.iat);
}

const VERIFIERS = { hmac: verifyHmac, 'standard-webhooks': verifyStandardWebhooks, jwt: verifyJwt };

// Dedup on X-Callback-Id (the same on every retry of one delivery). In a real receiver: a
// unique key in your database, written in the same transaction as the work.
function firstTime(id) {
  const path = process.env.VERIFY_SEEN;
  if (!path) return true;
  const seen = fs.existsSync(path) ? fs.readFileSync(path, 'utf8').split('\n') : [];
  if (seen.includes(id)) return false;
  fs.appendFileSync(path, id + '\n');
  return true;
}

function parse(raw) {
  const end = raw.indexOf('\r\n\r\n');
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const [method, target] = lines[0].split(' ');
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { method, target, headers, body: raw.subarray(end + 4) };
}

function main() {
  const [scheme, file] = process.argv.slice(2);
  const { method, target, headers, body } = parse(fs.readFileSync(file));
  try {
    VERIFIERS[scheme](process.env.VERIFY_SECRET, method, target, headers, body);
  } catch (e) {
    if (!(e instanceof Reject)) throw e;
    console.log(`REJECT: ${e.message}`);
    return 1;
  }
  // Answer 2xx to a duplicate too (our first answer was lost), but do not process it again.
  console.log(firstTime(headers['x-callback-id'] || '') ? 'ACCEPT' : 'ACCEPT duplicate');
  return 0;
}

process.exitCode = main();
