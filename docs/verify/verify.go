// Verify a callbackd callback: HMAC (CONTRACT §4), Standard Webhooks, or JWT HS256.
// Go standard library only. Usage:
//
//	go build -o verify verify.go
//	VERIFY_SECRET=... ./verify hmac|standard-webhooks|jwt request.http
//
// request.http is the raw HTTP/1.1 request. Prints ACCEPT, ACCEPT duplicate or
// REJECT: <reason>; exits 0 to accept, 1 to reject. Env: VERIFY_SECRET (required),
// VERIFY_SEEN (file of X-Callback-Ids already processed), VERIFY_NOW (unix seconds; a test
// hook to play "now" — leave unset in production).
package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const toleranceS = 300 // refuse timestamps more than 5 minutes away from our clock

func now() int64 {
	if s := os.Getenv("VERIFY_NOW"); s != "" {
		n, _ := strconv.ParseInt(s, 10, 64)
		return n
	}
	return time.Now().Unix()
}

func checkTimestamp(ts string) error {
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now() - t; d > toleranceS || d < -toleranceS {
		return errors.New("stale timestamp")
	}
	return nil
}

// cutPrefix is strings.CutPrefix, which Debian 12's Go (1.19) does not have yet.
func cutPrefix(s, prefix string) (string, bool) {
	return strings.TrimPrefix(s, prefix), strings.HasPrefix(s, prefix)
}

func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// --- HMAC (CONTRACT §4) ---------------------------------------------------------------------
func verifyHMAC(secret string, r *http.Request, body []byte) error {
	got, ok := cutPrefix(r.Header.Get("Authorization"), "HMAC ")
	if !ok {
		return errors.New("missing Authorization: HMAC")
	}
	id, ts := r.Header.Get("X-Callback-Id"), r.Header.Get("X-Callback-Timestamp")
	// r.RequestURI is the path and query exactly as sent.
	signed := []byte(id + "." + ts + "." + r.Method + "." + r.RequestURI + ".")
	want := hex.EncodeToString(mac([]byte(secret), signed, body))
	if !hmac.Equal([]byte(want), []byte(got)) { // constant time
		return errors.New("bad signature")
	}
	return checkTimestamp(ts)
}

// --- Standard Webhooks -------------------------------------------------------------------------
func verifyStandardWebhooks(secret string, r *http.Request, body []byte) error {
	id, ts := r.Header.Get("Webhook-Id"), r.Header.Get("Webhook-Timestamp")
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return errors.New("secret is not whsec_<base64>")
	}
	want := mac(key, []byte(id+"."+ts+"."), body)
	// During a secret rotation the header holds several "v1,<sig>", space-separated.
	valid := false
	for _, s := range strings.Fields(r.Header.Get("Webhook-Signature")) {
		if b64, ok := cutPrefix(s, "v1,"); ok {
			sig, err := base64.StdEncoding.DecodeString(b64)
			valid = valid || (err == nil && hmac.Equal(want, sig))
		}
	}
	if !valid {
		return errors.New("bad signature")
	}
	return checkTimestamp(ts)
}

// --- JWT HS256 (proves the sender, not the body) ----------------------------------------------
func verifyJWT(secret string, r *http.Request, _ []byte) error {
	token, ok := cutPrefix(r.Header.Get("Authorization"), "Bearer ")
	parts := strings.Split(token, ".")
	if !ok || len(parts) != 3 {
		return errors.New("malformed token")
	}
	var head struct{ Alg string }
	var claims struct{ Iat, Exp *int64 }
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	p, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil ||
		json.Unmarshal(h, &head) != nil || json.Unmarshal(p, &claims) != nil {
		return errors.New("malformed token")
	}
	if head.Alg != "HS256" { // never accept "none"
		return errors.New("unexpected alg")
	}
	if !hmac.Equal(mac([]byte(secret), []byte(parts[0]+"."+parts[1])), sig) {
		return errors.New("bad signature")
	}
	if claims.Exp == nil || claims.Iat == nil || now() >= *claims.Exp {
		return errors.New("stale timestamp (token expired)")
	}
	return checkTimestamp(strconv.FormatInt(*claims.Iat, 10))
}

// firstTime dedups on X-Callback-Id (the same on every retry of one delivery). In a real
// receiver: a unique key in your database, written in the same transaction as the work.
func firstTime(id string) bool {
	path := os.Getenv("VERIFY_SEEN")
	if path == "" {
		return true
	}
	seen, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(seen), "\n") {
		if line == id {
			return false
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err == nil {
		fmt.Fprintln(f, id)
		f.Close()
	}
	return true
}

func main() {
	verifiers := map[string]func(string, *http.Request, []byte) error{
		"hmac": verifyHMAC, "standard-webhooks": verifyStandardWebhooks, "jwt": verifyJWT,
	}
	raw, err := os.ReadFile(os.Args[2])
	if err != nil {
		panic(err)
	}
	// In an http.Handler you already have r; read the body with io.ReadAll as here.
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(r.Body)
	if err := verifiers[os.Args[1]](os.Getenv("VERIFY_SECRET"), r, body); err != nil {
		fmt.Println("REJECT: " + err.Error())
		os.Exit(1)
	}
	// Answer 2xx to a duplicate too (our first answer was lost), but do not process it again.
	if firstTime(r.Header.Get("X-Callback-Id")) {
		fmt.Println("ACCEPT")
	} else {
		fmt.Println("ACCEPT duplicate")
	}
}
