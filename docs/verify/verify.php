<?php
// Verify a callbackd callback: HMAC (CONTRACT §4), Standard Webhooks, or JWT HS256.
// PHP core only (hash_hmac, hash_equals, json_decode). Usage:
//   VERIFY_SECRET=... php verify.php hmac|standard-webhooks|jwt request.http
// request.http is the raw HTTP/1.1 request. Prints ACCEPT, ACCEPT duplicate or
// REJECT: <reason>; exits 0 to accept, 1 to reject. Env: VERIFY_SECRET (required),
// VERIFY_SEEN (file of X-Callback-Ids already processed), VERIFY_NOW (unix seconds; a test
// hook to play "now" — leave unset in production).
// In a real handler: $method = $_SERVER['REQUEST_METHOD'], $target = $_SERVER['REQUEST_URI'],
// headers from getallheaders() (lower-case the names), $body = file_get_contents('php://input').

const TOLERANCE_S = 300; // refuse timestamps more than 5 minutes away from our clock

class Reject extends Exception {}

function now(): int { return (int) (getenv('VERIFY_NOW') ?: time()); }

function check_timestamp($ts): void {
    if (!preg_match('/^\d+$/', (string) $ts)) throw new Reject('bad timestamp');
    if (abs(now() - (int) $ts) > TOLERANCE_S) throw new Reject('stale timestamp');
}

// --- HMAC (CONTRACT §4) -----------------------------------------------------------------------
function verify_hmac(string $secret, string $method, string $target, array $h, string $body): void {
    $got = $h['authorization'] ?? '';
    if (strncmp($got, 'HMAC ', 5) !== 0) throw new Reject('missing Authorization: HMAC');
    $ts = $h['x-callback-timestamp'] ?? '';
    $signed = implode('.', [$h['x-callback-id'] ?? '', $ts, $method, $target, $body]);
    if (!hash_equals(hash_hmac('sha256', $signed, $secret), substr($got, 5))) { // constant time
        throw new Reject('bad signature');
    }
    check_timestamp($ts);
}

// --- Standard Webhooks ----------------------------------------------------------------------------
function verify_standard_webhooks(string $secret, string $method, string $target, array $h, string $body): void {
    $ts = $h['webhook-timestamp'] ?? '';
    $key = base64_decode(preg_replace('/^whsec_/', '', $secret));
    $want = base64_encode(hash_hmac('sha256', ($h['webhook-id'] ?? '') . ".$ts.$body", $key, true));
    // During a secret rotation the header holds several "v1,<sig>", space-separated.
    $valid = false;
    foreach (explode(' ', $h['webhook-signature'] ?? '') as $s) {
        $valid = (strncmp($s, 'v1,', 3) === 0 && hash_equals($want, substr($s, 3))) || $valid;
    }
    if (!$valid) throw new Reject('bad signature');
    check_timestamp($ts);
}

// --- JWT HS256 (proves the sender, not the body) ---------------------------------------------------
function b64url(string $s): string { return base64_decode(strtr($s, '-_', '+/')); }

function verify_jwt(string $secret, string $method, string $target, array $h, string $body): void {
    $auth = $h['authorization'] ?? '';
    $parts = explode('.', substr($auth, 7));
    if (strncmp($auth, 'Bearer ', 7) !== 0 || count($parts) !== 3) throw new Reject('malformed token');
    [$head, $payload, $sig] = $parts;
    if ((json_decode(b64url($head), true)['alg'] ?? null) !== 'HS256') { // never accept "none"
        throw new Reject('unexpected alg');
    }
    if (!hash_equals(hash_hmac('sha256', "$head.$payload", $secret, true), b64url($sig))) {
        throw new Reject('bad signature');
    }
    $claims = json_decode(b64url($payload), true);
    if (!is_int($claims['exp'] ?? null) || now() >= $claims['exp']) {
        throw new Reject('stale timestamp (token expired)');
    }
    check_timestamp($claims['iat'] ?? '');
}

// Dedup on X-Callback-Id (the same on every retry of one delivery). In a real receiver: a
// unique key in your database, written in the same transaction as the work.
function first_time(string $id): bool {
    $path = getenv('VERIFY_SEEN');
    if (!$path) return true;
    $seen = file_exists($path) ? file($path, FILE_IGNORE_NEW_LINES) : [];
    if (in_array($id, $seen, true)) return false;
    file_put_contents($path, "$id\n", FILE_APPEND);
    return true;
}

[$head, $body] = explode("\r\n\r\n", file_get_contents($argv[2]), 2);
$lines = explode("\r\n", $head);
[$method, $target] = explode(' ', array_shift($lines));
$headers = [];
foreach ($lines as $line) {
    [$name, $value] = explode(':', $line, 2);
    $headers[strtolower(trim($name))] = trim($value);
}
$verifiers = ['hmac' => 'verify_hmac', 'standard-webhooks' => 'verify_standard_webhooks', 'jwt' => 'verify_jwt'];
try {
    $verifiers[$argv[1]](getenv('VERIFY_SECRET'), $method, $target, $headers, $body);
} catch (Reject $e) {
    echo 'REJECT: ', $e->getMessage(), "\n";
    exit(1);
}
// Answer 2xx to a duplicate too (our first answer was lost), but do not process it again.
echo first_time($headers['x-callback-id'] ?? '') ? "ACCEPT\n" : "ACCEPT duplicate\n";
exit(0);
