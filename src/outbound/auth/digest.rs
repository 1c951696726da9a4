//! HTTP Digest (RFC 7616) with MD5 and SHA-256 (and their `-sess` variants), qop `auth`
//! (or `auth-int` when that is all the server offers; RFC 2069 style when it offers no qop).
//!
//! The first request of an endpoint goes without credentials; its 401 challenge is
//! answered with a resend. The challenge is kept per endpoint and later requests answer
//! it right away with `nc` counting up. A 401 with `stale=true` (or with a nonce other than
//! the one we used) starts over once with the new challenge. All of this is one attempt.

use md5::Md5;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{
    AuthError, Secret, SendError, body_bytes, check_non_empty, hex, path_and_query,
    sensitive_header,
};
use crate::model::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn hash(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data)),
            Algorithm::Sha256 => hex(&Sha256::digest(data)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qop {
    Auth,
    AuthInt,
    /// RFC 2069: the server asked for no qop.
    None,
}

/// A parsed `WWW-Authenticate: Digest ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The name to send back (`MD5`, `SHA-256`, `MD5-sess`, ...).
    pub algorithm_name: String,
    pub sess: bool,
    pub qop: Qop,
    pub stale: bool,
    pub userhash: bool,
}

/// The endpoint's current challenge and the last `nc` used with its nonce.
#[derive(Default)]
pub(crate) struct DigestState {
    current: Mutex<Option<(Challenge, u32)>>,
}

impl DigestState {
    /// The challenge to answer and its next `nc`. After `ffffffff` (the most 8 hex digits
    /// hold) the nonce is used up: the next request goes without credentials and gets a
    /// fresh challenge.
    fn next(&self) -> Option<(Challenge, u32)> {
        let mut current = self.current.lock();
        let (challenge, nc) = current.as_mut()?;
        let Some(next) = nc.checked_add(1) else {
            *current = None;
            return None;
        };
        *nc = next;
        Some((challenge.clone(), next))
    }

    fn start(&self, challenge: Challenge) -> u32 {
        let mut current = self.current.lock();
        *current = Some((challenge, 1));
        1
    }
}

impl Digest {
    pub(super) fn validate(&self) -> Result<(), ValidationError> {
        check_non_empty(&self.username, "auth.username")?;
        if self.password.expose().chars().any(char::is_control) {
            return Err(ValidationError::new(
                "auth.password",
                "must not contain control characters",
            ));
        }
        Ok(())
    }

    pub(super) async fn send(
        &self,
        client: &reqwest::Client,
        mut request: reqwest::Request,
        state: &DigestState,
    ) -> Result<reqwest::Response, SendError> {
        let resend = request.try_clone().ok_or_else(|| {
            SendError::Auth("auth: digest: the request body cannot be sent twice".into())
        })?;
        let used = state.next();
        if let Some((challenge, nc)) = &used {
            self.authorize(&mut request, challenge, *nc)?;
        }
        let response = client.execute(request).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(challenge) = best_challenge(response.headers()) else {
            return Ok(response); // a 401 without a Digest challenge is the final answer
        };
        // Our answer to the very same nonce was refused and it is not stale: the
        // credentials are wrong; keep the challenge for next time and report the 401.
        let same_nonce = used
            .as_ref()
            .is_some_and(|(c, _)| c.nonce == challenge.nonce);
        if same_nonce && !challenge.stale {
            return Ok(response);
        }
        drop(response);
        let mut request = resend;
        let nc = state.start(challenge.clone());
        self.authorize(&mut request, &challenge, nc)?;
        Ok(client.execute(request).await?)
    }

    fn authorize(
        &self,
        request: &mut reqwest::Request,
        challenge: &Challenge,
        nc: u32,
    ) -> Result<(), AuthError> {
        let cnonce = hex(&rand::random::<[u8; 16]>());
        let uri = path_and_query(request.url()).to_string();
        let body = match challenge.qop {
            Qop::AuthInt => Some(body_bytes(request)?),
            _ => None,
        };
        let value = authorization(
            challenge,
            &self.username,
            self.password.expose(),
            request.method().as_str(),
            &uri,
            body,
            nc,
            &cnonce,
        );
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, sensitive_header(&value)?);
        Ok(())
    }
}

/// The `Authorization: Digest ...` value (RFC 7616 §3.4).
#[allow(clippy::too_many_arguments)]
pub(crate) fn authorization(
    c: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    body: Option<&[u8]>,
    nc: u32,
    cnonce: &str,
) -> String {
    let h = |s: &str| c.algorithm.hash(s.as_bytes());
    let mut ha1 = h(&format!("{username}:{}:{password}", c.realm));
    if c.sess {
        ha1 = h(&format!("{ha1}:{}:{cnonce}", c.nonce));
    }
    let ha2 = match c.qop {
        Qop::AuthInt => h(&format!(
            "{method}:{uri}:{}",
            c.algorithm.hash(body.unwrap_or_default())
        )),
        _ => h(&format!("{method}:{uri}")),
    };
    let nc_hex = format!("{nc:08x}");
    let qop_name = match c.qop {
        Qop::Auth => "auth",
        Qop::AuthInt => "auth-int",
        Qop::None => "",
    };
    let response = match c.qop {
        Qop::None => h(&format!("{ha1}:{}:{ha2}", c.nonce)),
        _ => h(&format!(
            "{ha1}:{}:{nc_hex}:{cnonce}:{qop_name}:{ha2}",
            c.nonce
        )),
    };
    let user = if c.userhash {
        h(&format!("{username}:{}", c.realm))
    } else {
        username.to_string()
    };
    let mut out = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm={}, response=\"{response}\"",
        quote(&user),
        quote(&c.realm),
        quote(&c.nonce),
        quote(uri),
        c.algorithm_name,
    );
    if c.qop != Qop::None {
        out.push_str(&format!(
            ", qop={qop_name}, nc={nc_hex}, cnonce=\"{cnonce}\""
        ));
    }
    if let Some(o) = &c.opaque {
        out.push_str(&format!(", opaque=\"{}\"", quote(o)));
    }
    if c.userhash {
        out.push_str(", userhash=true");
    }
    out
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The strongest Digest challenge we can answer among the response's
/// `WWW-Authenticate` headers: SHA-256 before MD5.
pub(crate) fn best_challenge(headers: &reqwest::header::HeaderMap) -> Option<Challenge> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("digest"))
        .filter_map(|(_, params)| challenge_from(&params))
        .max_by_key(|c| c.algorithm == Algorithm::Sha256)
}

fn challenge_from(params: &[(String, String)]) -> Option<Challenge> {
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let nonce = get("nonce")?;
    let algorithm_name = get("algorithm").unwrap_or_else(|| "MD5".to_string());
    let (algorithm, sess) = match algorithm_name.to_ascii_uppercase().as_str() {
        "MD5" => (Algorithm::Md5, false),
        "MD5-SESS" => (Algorithm::Md5, true),
        "SHA-256" => (Algorithm::Sha256, false),
        "SHA-256-SESS" => (Algorithm::Sha256, true),
        _ => return None,
    };
    let qop = match get("qop") {
        None => Qop::None,
        Some(list) => {
            let offered: Vec<String> = list
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect();
            if offered.iter().any(|q| q == "auth") {
                Qop::Auth
            } else if offered.iter().any(|q| q == "auth-int") {
                Qop::AuthInt
            } else {
                return None;
            }
        }
    };
    Some(Challenge {
        realm: get("realm").unwrap_or_default(),
        nonce,
        opaque: get("opaque"),
        algorithm,
        algorithm_name,
        sess,
        qop,
        stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        userhash: get("userhash").is_some_and(|s| s.eq_ignore_ascii_case("true")),
    })
}

type ParsedChallenge = (String, Vec<(String, String)>);

/// Splits one `WWW-Authenticate` value into challenges: `scheme`, then `name=value`
/// parameters (tokens or quoted strings) up to the next scheme.
pub(crate) fn parse_challenges(header: &str) -> Vec<ParsedChallenge> {
    let s = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<ParsedChallenge> = Vec::new();
    let is_token = |c: u8| !c.is_ascii_whitespace() && !matches!(c, b',' | b'=' | b'"');
    while i < s.len() {
        while i < s.len() && (s[i].is_ascii_whitespace() || s[i] == b',') {
            i += 1;
        }
        let start = i;
        while i < s.len() && is_token(s[i]) {
            i += 1;
        }
        if start == i {
            i += 1; // a stray character: skip it
            continue;
        }
        let token = header[start..i].to_string();
        let mut j = i;
        while j < s.len() && s[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < s.len() && s[j] == b'=' {
            // A parameter of the current challenge.
            j += 1;
            while j < s.len() && s[j].is_ascii_whitespace() {
                j += 1;
            }
            let mut value = String::new();
            if j < s.len() && s[j] == b'"' {
                j += 1;
                while j < s.len() && s[j] != b'"' {
                    if s[j] == b'\\' && j + 1 < s.len() {
                        j += 1;
                    }
                    let ch_len = header[j..].chars().next().map_or(1, char::len_utf8);
                    value.push_str(&header[j..j + ch_len]);
                    j += ch_len;
                }
                j += 1;
            } else {
                let vs = j;
                while j < s.len() && s[j] != b',' && !s[j].is_ascii_whitespace() {
                    j += 1;
                }
                value = header[vs..j].to_string();
            }
            if let Some((_, params)) = out.last_mut() {
                params.push((token, value));
            }
            i = j;
        } else {
            out.push((token, Vec::new()));
            i = j;
        }
    }
    out
}

#[cfg(test)]
mod tests;
