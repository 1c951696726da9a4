//! W3C Trace Context (`traceparent`) as the platform sends it with an enqueue. Read strictly:
//! anything that is not exactly `00-<32 hex>-<16 hex>-<2 hex>` (lower case, ids not all
//! zero) is no trace context at all. It is never an error: a platform's tracing must not be
//! able to refuse its own notifications.

/// A valid `traceparent` of version 00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// The trace context of `value`, or None unless it is exactly a version-00 traceparent.
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        // 2 + 1 + 32 + 1 + 16 + 1 + 2: version 00 has no room for anything more.
        if value.len() != 55 || &value[..3] != b"00-" || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut flags = [0u8; 1];
        hex_into(&value[3..35], &mut trace_id)?;
        hex_into(&value[36..52], &mut span_id)?;
        hex_into(&value[53..55], &mut flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            flags: flags[0],
        })
    }

    /// The one `traceparent` of a request: None when absent, sent more than once, or
    /// malformed (the specification makes all three mean "no trace context").
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<TraceParent> {
        let mut values = values.into_iter();
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        Self::parse(first)
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("00-")?;
        self.trace_id
            .iter()
            .try_for_each(|b| write!(f, "{b:02x}"))?;
        f.write_str("-")?;
        self.span_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "-{:02x}", self.flags)
    }
}

/// Lower-case hex only, as the specification requires.
fn hex_into(text: &[u8], out: &mut [u8]) -> Option<()> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let t = TraceParent::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(t.trace_id[0], 0x4b);
        assert_eq!(t.span_id[7], 0xb7);
        assert_eq!(t.flags, 1);
        assert_eq!(t.to_string(), GOOD);
    }

    #[test]
    fn anything_else_is_no_trace_context() {
        let long = format!("{GOOD}-extra");
        let bad: Vec<&[u8]> = vec![
            b"",
            b"garbage",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            long.as_bytes(),
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473\0-00f067aa0ba902b7-01",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b\xff-01",
        ];
        for value in bad {
            assert_eq!(
                TraceParent::parse(value),
                None,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn a_repeated_header_is_no_trace_context() {
        let good = GOOD.as_bytes();
        assert!(TraceParent::from_values([good]).is_some());
        assert_eq!(TraceParent::from_values([good, good]), None);
        assert_eq!(TraceParent::from_values([]), None);
    }
}
