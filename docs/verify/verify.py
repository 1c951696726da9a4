#!/usr/bin/env python3
"""Verify a callbackd callback: HMAC (CONTRACT §4), Standard Webhooks, or JWT HS256.

Standard library only. Usage:
    VERIFY_SECRET=... python3 verify.py hmac|standard-webhooks|jwt request.http
request.http is the raw HTTP/1.1 request (request line, headers, blank line, body).
Prints ACCEPT, ACCEPT duplicate, or REJECT: <reason>; exits 0 to accept, 1 to reject.
Env: VERIFY_SECRET (required), VERIFY_SEEN (file of X-Callback-Ids already processed),
VERIFY_NOW (unix seconds; a test hook to play "now" — leave unset in production).
"""
import base64, hashlib, hmac, json, os, sys, time

TOLERANCE_S = 300  # refuse timestamps more than 5 minutes away from our clock


class Reject(Exception):
    pass


def now():
    return int(os.environ.get("VERIFY_NOW") or time.time())


def check_timestamp(ts):
    try:
        ts = int(ts)
    except (TypeError, ValueError):
        raise Reject("bad timestamp")
    if abs(now() - ts) > TOLERANCE_S:
        raise Reject("stale timestamp")


# --- HMAC (CONTRACT §4) -------------------------------------------------------------
def verify_hmac(secret, method, target, headers, body):
    got = headers.get("authorization", "")
    if not got.startswith("HMAC "):
        raise Reject("missing Authorization: HMAC")
    cid, ts = headers.get("x-callback-id", ""), headers.get("x-callback-timestamp", "")
    signed = ".".join([cid, ts, method, target]).encode() + b"." + body
    want = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, got[5:]):  # constant time
        raise Reject("bad signature")
    check_timestamp(ts)


# --- Standard Webhooks ------------------------------------------------------------------
def verify_standard_webhooks(secret, method, target, headers, body):
    wid, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{wid}.{ts}.".encode() + body
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # During a secret rotation the header holds several "v1,<sig>", space-separated.
    sigs = [s[3:] for s in headers.get("webhook-signature", "").split() if s.startswith("v1,")]
    if not any(hmac.compare_digest(want, s) for s in sigs):
        raise Reject("bad signature")
    check_timestamp(ts)


# --- JWT HS256 (proves the sender, not the body) -----------------------------------------
def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_jwt(secret, method, target, headers, body):
    auth = headers.get("authorization", "")
    if not auth.startswith("Bearer "):
        raise Reject("missing Authorization: Bearer")
    try:
        head, payload, sig = auth[7:].split(".")
        if json.loads(b64url(head)).get("alg") != "HS256":  # never accept "none"
            raise Reject("unexpected alg")
        want = hmac.new(secret.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
        ok = hmac.compare_digest(want, b64url(sig))
    except (ValueError, AttributeError):
        raise Reject("malformed token")
    if not ok:
        raise Reject("bad signature")
    claims = json.loads(b64url(payload))
    if not isinstance(claims.get("exp"), int) or now() >= claims["exp"]:
        raise Reject("stale timestamp (token expired)")
    check_timestamp(claims.get("iat"))


VERIFIERS = {"hmac": verify_hmac, "standard-webhooks": verify_standard_webhooks, "jwt": verify_jwt}


# --- Dedup on X-Callback-Id: the same on every retry of one delivery ---------------------
def first_time(callback_id):
    """True the first time an id is seen. In a real receiver: a unique key in your
    database (INSERT ... ON CONFLICT DO NOTHING), in the same transaction as the work."""
    path = os.environ.get("VERIFY_SEEN")
    if not path:
        return True
    seen = open(path).read().split() if os.path.exists(path) else []
    if callback_id in seen:
        return False
    with open(path, "a") as f:
        f.write(callback_id + "\n")
    return True


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers, body


def main():
    scheme, path = sys.argv[1], sys.argv[2]
    method, target, headers, body = parse(open(path, "rb").read())
    try:
        VERIFIERS[scheme](os.environ["VERIFY_SECRET"], method, target, headers, body)
    except Reject as e:
        print(f"REJECT: {e}")
        return 1
    # Answer 2xx to a duplicate too (the retry means our first answer was lost), but do not
    # process it again.
    print("ACCEPT" if first_time(headers.get("x-callback-id", "")) else "ACCEPT duplicate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
