// Verify a callbackd callback: HMAC (CONTRACT §4), Standard Webhooks, or JWT HS256.
// Java standard library only (javax.crypto, java.security.MessageDigest). Usage:
//   javac Verify.java && VERIFY_SECRET=... java Verify hmac|standard-webhooks|jwt request.http
// request.http is the raw HTTP/1.1 request. Prints ACCEPT, ACCEPT duplicate or
// REJECT: <reason>; exits 0 to accept, 1 to reject. Env: VERIFY_SECRET (required),
// VERIFY_SEEN (file of X-Callback-Ids already processed), VERIFY_NOW (unix seconds; a test
// hook to play "now" — leave unset in production).
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.MessageDigest;
import java.util.*;
import java.util.regex.*;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class Verify {
    static final long TOLERANCE_S = 300; // refuse timestamps more than 5 minutes away from our clock

    static class Reject extends Exception {
        Reject(String reason) { super(reason); }
    }

    static long now() {
        String n = System.getenv("VERIFY_NOW");
        return n != null ? Long.parseLong(n) : System.currentTimeMillis() / 1000;
    }

    static void checkTimestamp(String ts) throws Reject {
        if (ts == null || !ts.matches("\\d{1,18}")) throw new Reject("bad timestamp");
        if (Math.abs(now() - Long.parseLong(ts)) > TOLERANCE_S) throw new Reject("stale timestamp");
    }

    static byte[] hmac(byte[] key, byte[]... parts) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        for (byte[] p : parts) mac.update(p);
        return mac.doFinal();
    }

    static byte[] utf8(String s) { return s.getBytes(StandardCharsets.UTF_8); }

    // --- HMAC (CONTRACT §4) ---------------------------------------------------------------------
    static void verifyHmac(String secret, String method, String target, Map<String, String> h, byte[] body)
            throws Exception {
        String got = h.getOrDefault("authorization", "");
        if (!got.startsWith("HMAC ")) throw new Reject("missing Authorization: HMAC");
        String ts = h.getOrDefault("x-callback-timestamp", "");
        String prefix = h.getOrDefault("x-callback-id", "") + "." + ts + "." + method + "." + target + ".";
        String want = HexFormat.of().formatHex(hmac(utf8(secret), utf8(prefix), body));
        if (!MessageDigest.isEqual(utf8(want), utf8(got.substring(5)))) { // constant time
            throw new Reject("bad signature");
        }
        checkTimestamp(ts);
    }

    // --- Standard Webhooks ------------------------------------------------------------------------
    static void verifyStandardWebhooks(String secret, String method, String target, Map<String, String> h,
            byte[] body) throws Exception {
        String ts = h.getOrDefault("webhook-timestamp", "");
        byte[] key = Base64.getDecoder().decode(secret.replaceFirst("^whsec_", ""));
        byte[] want = utf8(Base64.getEncoder().encodeToString(
                hmac(key, utf8(h.getOrDefault("webhook-id", "") + "." + ts + "."), body)));
        // During a secret rotation the header holds several "v1,<sig>", space-separated.
        boolean valid = false;
        for (String s : h.getOrDefault("webhook-signature", "").split(" ")) {
            valid |= s.startsWith("v1,") && MessageDigest.isEqual(want, utf8(s.substring(3)));
        }
        if (!valid) throw new Reject("bad signature");
        checkTimestamp(ts);
    }

    // --- JWT HS256 (proves the sender, not the body) -----------------------------------------------
    // Java has no JSON parser in its standard library: the claims are read with a pattern, and
    // only after the signature proved that callbackd wrote them.
    static String claim(String json, String name) {
        Matcher m = Pattern.compile("\"" + name + "\"\\s*:\\s*\"?([^\",}]*)").matcher(json);
        return m.find() ? m.group(1).trim() : null;
    }

    static void verifyJwt(String secret, String method, String target, Map<String, String> h, byte[] body)
            throws Exception {
        String auth = h.getOrDefault("authorization", "");
        String[] parts = auth.substring(Math.min(7, auth.length())).split("\\.", -1);
        if (!auth.startsWith("Bearer ") || parts.length != 3) throw new Reject("malformed token");
        Base64.Decoder b64 = Base64.getUrlDecoder();
        String head, claims;
        byte[] sig;
        try {
            head = new String(b64.decode(parts[0]), StandardCharsets.UTF_8);
            claims = new String(b64.decode(parts[1]), StandardCharsets.UTF_8);
            sig = b64.decode(parts[2]);
        } catch (IllegalArgumentException e) {
            throw new Reject("malformed token");
        }
        if (!"HS256".equals(claim(head, "alg"))) throw new Reject("unexpected alg"); // never "none"
        if (!MessageDigest.isEqual(hmac(utf8(secret), utf8(parts[0] + "." + parts[1])), sig)) {
            throw new Reject("bad signature");
        }
        String exp = claim(claims, "exp");
        if (exp == null || !exp.matches("\\d{1,18}") || now() >= Long.parseLong(exp)) {
            throw new Reject("stale timestamp (token expired)");
        }
        checkTimestamp(claim(claims, "iat"));
    }

    // Dedup on X-Callback-Id (the same on every retry of one delivery). In a real receiver: a
    // unique key in your database, written in the same transaction as the work.
    static boolean firstTime(String id) throws Exception {
        String path = System.getenv("VERIFY_SEEN");
        if (path == null || path.isEmpty()) return true;
        Path p = Paths.get(path);
        if (Files.exists(p) && Files.readAllLines(p).contains(id)) return false;
        Files.writeString(p, id + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        return true;
    }

    static int indexOf(byte[] raw, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= raw.length; i++) {
            for (int j = 0; j < needle.length; j++) if (raw[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }

    public static void main(String[] args) throws Exception {
        byte[] raw = Files.readAllBytes(Paths.get(args[1]));
        int end = indexOf(raw, new byte[] {'\r', '\n', '\r', '\n'});
        String[] lines = new String(raw, 0, end, StandardCharsets.ISO_8859_1).split("\r\n");
        String[] requestLine = lines[0].split(" ");
        Map<String, String> headers = new HashMap<>();
        for (int i = 1; i < lines.length; i++) {
            int colon = lines[i].indexOf(':');
            headers.put(lines[i].substring(0, colon).trim().toLowerCase(), lines[i].substring(colon + 1).trim());
        }
        byte[] body = Arrays.copyOfRange(raw, end + 4, raw.length);
        String secret = System.getenv("VERIFY_SECRET");
        try {
            switch (args[0]) {
                case "hmac" -> verifyHmac(secret, requestLine[0], requestLine[1], headers, body);
                case "standard-webhooks" -> verifyStandardWebhooks(secret, requestLine[0], requestLine[1], headers, body);
                case "jwt" -> verifyJwt(secret, requestLine[0], requestLine[1], headers, body);
                default -> throw new IllegalArgumentException("scheme: hmac, standard-webhooks or jwt");
            }
        } catch (Reject e) {
            System.out.println("REJECT: " + e.getMessage());
            System.exit(1);
        }
        // Answer 2xx to a duplicate too (our first answer was lost), but do not process it again.
        System.out.println(firstTime(headers.getOrDefault("x-callback-id", "")) ? "ACCEPT" : "ACCEPT duplicate");
    }
}
