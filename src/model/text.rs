//! Text that came from outside, made storable. PostgreSQL `text` holds neither NUL nor
//! invalid UTF-8, and one such value fails the whole statement it is in — for a batch
//! completion, every outcome of the batch. So whatever a partner answered is turned into
//! valid text here, and the caller is told when that changed anything.

/// `bytes` as storable text, and whether that is not byte for byte what was sent (an invalid
/// UTF-8 sequence or a NUL was replaced by U+FFFD).
pub fn text_from_bytes(bytes: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    let mut lossy = matches!(text, std::borrow::Cow::Owned(_));
    let text = if text.contains('\0') {
        lossy = true;
        text.replace('\0', "\u{FFFD}")
    } else {
        text.into_owned()
    };
    (text, lossy)
}

/// `text` with any NUL replaced by U+FFFD (an error message may quote what a partner sent).
pub fn text_from_str(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_text_is_kept_as_is() {
        assert_eq!(
            text_from_bytes("ok — pago".as_bytes()),
            ("ok — pago".into(), false)
        );
    }

    #[test]
    fn nul_and_invalid_utf8_are_replaced_and_marked() {
        assert_eq!(text_from_bytes(b"a\0b"), ("a\u{FFFD}b".into(), true));
        assert_eq!(text_from_bytes(b"a\xffb"), ("a\u{FFFD}b".into(), true));
        assert_eq!(
            text_from_bytes(b"\xc3\x28\0"),
            ("\u{FFFD}(\u{FFFD}".into(), true)
        );
        assert_eq!(text_from_str("x\0y"), "x\u{FFFD}y");
    }
}
