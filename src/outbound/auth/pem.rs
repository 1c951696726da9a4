//! Just enough PEM (RFC 7468) to check and classify keys and certificates at registration.

use base64::Engine;

pub(crate) struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every `-----BEGIN X-----` … `-----END X-----` block, decoded. Text outside the blocks
/// is ignored (as OpenSSL does); a block that does not decode is an error.
pub(crate) fn parse(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut b64 = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                return Err(format!("{label} block has headers (an encrypted key?)"));
            }
            b64.push_str(line);
        }
        if !closed {
            return Err(format!("{label} block has no END line"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| format!("{label} block is not valid base64"))?;
        if der.is_empty() {
            return Err(format!("{label} block is empty"));
        }
        blocks.push(Block {
            label: label.to_string(),
            der,
        });
    }
    Ok(blocks)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    /// An EC key in a PKCS#8 wrapper.
    EcPkcs8,
    /// An EC key in SEC1 form (`EC PRIVATE KEY`).
    EcSec1,
    Other,
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x71];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The one private key in `text`, with its kind.
pub(crate) fn private_key(text: &str) -> Result<(KeyKind, Vec<u8>), String> {
    let blocks = parse(text)?;
    let mut keys = blocks
        .into_iter()
        .filter(|b| b.label.ends_with("PRIVATE KEY"));
    let Some(key) = keys.next() else {
        return Err("no PEM private key (-----BEGIN PRIVATE KEY-----) found".into());
    };
    if keys.next().is_some() {
        return Err("more than one private key".into());
    }
    let kind = match key.label.as_str() {
        "RSA PRIVATE KEY" => KeyKind::Rsa,
        "EC PRIVATE KEY" => KeyKind::EcSec1,
        "PRIVATE KEY" => {
            // The algorithm identifier sits in the first few dozen bytes of PKCS#8.
            let head = &key.der[..key.der.len().min(40)];
            if key.der.first() != Some(&0x30) {
                return Err("not a PKCS#8 private key".into());
            }
            if contains(head, OID_RSA) {
                KeyKind::Rsa
            } else if contains(head, OID_EC) {
                KeyKind::EcPkcs8
            } else if contains(head, OID_ED25519) || contains(head, OID_ED448) {
                KeyKind::Other
            } else {
                return Err("not a PKCS#8 RSA, EC or EdDSA private key".into());
            }
        }
        "ENCRYPTED PRIVATE KEY" => return Err("encrypted private keys are not supported".into()),
        other => return Err(format!("unsupported key type {other}")),
    };
    Ok((kind, key.der))
}

/// Wraps a SEC1 `ECPrivateKey` on P-256 into PKCS#8 (RFC 5915 / RFC 5208).
pub(crate) fn sec1_p256_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let mut alg = vec![0x06, OID_EC.len() as u8];
    alg.extend_from_slice(OID_EC);
    alg.push(0x06);
    alg.push(OID_P256.len() as u8);
    alg.extend_from_slice(OID_P256);
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend(tlv(0x30, &alg));
    body.extend(tlv(0x04, sec1));
    tlv(0x30, &body)
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// The DER certificates in `text` (at least one).
pub(crate) fn certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let certs: Vec<Vec<u8>> = parse(text)?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .collect();
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) found".into());
    }
    Ok(certs)
}
