use super::*;

fn challenge(header: &str) -> Challenge {
    let mut h = reqwest::header::HeaderMap::new();
    h.append(reqwest::header::WWW_AUTHENTICATE, header.parse().unwrap());
    best_challenge(&h).unwrap()
}

/// RFC 7616 §3.9.1: user "Mufasa", password "Circle of Life", GET /dir/index.html.
const RFC_CHALLENGE: &str = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

/// The RFC 7616 §3.9.1 client's answer to `c`: its credentials, request, nc and cnonce.
fn rfc_answer(c: &Challenge) -> String {
    authorization(
        c,
        "Mufasa",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        None,
        1,
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
}

#[test]
fn rfc7616_sha256_example() {
    let c = challenge(RFC_CHALLENGE);
    assert_eq!(c.algorithm, Algorithm::Sha256);
    assert_eq!(c.qop, Qop::Auth);
    let v = rfc_answer(&c);
    assert!(
        v.contains(
            r#"response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1""#
        ),
        "{v}"
    );
    assert!(v.contains("nc=00000001"), "{v}");
    assert!(v.contains(r#"opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#));
}

#[test]
fn rfc7616_md5_example() {
    // The same exchange with MD5 (RFC 7616 §3.9.1 gives both).
    let c = challenge(&RFC_CHALLENGE.replace("algorithm=SHA-256", "algorithm=MD5"));
    assert_eq!(c.algorithm, Algorithm::Md5);
    let v = rfc_answer(&c);
    assert!(
        v.contains(r#"response="8ca523f5e9506fed4657c9700eebdbec""#),
        "{v}"
    );
}

#[test]
fn nc_never_wraps_a_used_up_nonce_starts_over() {
    let state = DigestState::default();
    assert_eq!(state.next(), None, "no challenge yet");
    assert_eq!(state.start(challenge(RFC_CHALLENGE)), 1);
    assert_eq!(state.next().map(|(_, nc)| nc), Some(2));
    state.current.lock().as_mut().unwrap().1 = u32::MAX - 1;
    assert_eq!(state.next().map(|(_, nc)| nc), Some(u32::MAX));
    assert_eq!(state.next(), None, "nonce used up");
    assert_eq!(state.next(), None);
    assert_eq!(state.start(challenge(RFC_CHALLENGE)), 1);
}

#[test]
fn any_challenge_text_parses_without_panicking() {
    use proptest::prelude::*;
    proptest!(|(header in "(?s).{0,80}")| {
        let _ = parse_challenges(&header);
    });
    proptest!(|(header in r#"(Digest|Basic|,| |=|"|\\|[a-z]{1,4}|é)*"#)| {
        let _ = parse_challenges(&header);
    });
}

#[test]
fn picks_sha256_among_several_and_reads_stale() {
    let mut h = reqwest::header::HeaderMap::new();
    for v in [
        r#"Basic realm="x""#,
        r#"Digest realm="r", nonce="n1", algorithm=MD5, qop="auth""#,
        r#"Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth", stale=TRUE"#,
    ] {
        h.append(reqwest::header::WWW_AUTHENTICATE, v.parse().unwrap());
    }
    let c = best_challenge(&h).unwrap();
    assert_eq!((c.nonce.as_str(), c.stale), ("n2", true));
    // Several challenges in one header value.
    let c = challenge(r#"Basic realm="a, b", Digest nonce="n3", realm="r", qop=auth"#);
    assert_eq!((c.nonce.as_str(), c.algorithm), ("n3", Algorithm::Md5));
    // Nothing we can answer.
    let mut h = reqwest::header::HeaderMap::new();
    h.append(
        reqwest::header::WWW_AUTHENTICATE,
        r#"Digest nonce="n", algorithm=SHA-512-256"#.parse().unwrap(),
    );
    assert!(best_challenge(&h).is_none());
}
