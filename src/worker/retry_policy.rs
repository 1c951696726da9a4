//! The retry policy of CONTRACT §5: attempt n failed -> wait min(base * 2^(n-1), cap),
//! up to 20 % less at random (so a partner's recovery is not met by a thundering herd),
//! and never less than a 429/503 `Retry-After` (still capped). The header itself is read by
//! [`crate::outbound::parse_retry_after`], without trusting its size: a delta-seconds too
//! large for a `u64` or a date centuries ahead is as good as "the cap".

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base_ms: u64,
    pub max_ms: u64,
}

impl RetryPolicy {
    /// `jitter` is a uniform random number in [0, 1): 0 keeps the full delay, values near 1
    /// take away almost 20 %.
    pub fn delay_ms(&self, failed_attempt: u32, jitter: f64, retry_after: Option<Duration>) -> u64 {
        let exponent = failed_attempt.saturating_sub(1).min(63);
        let scheduled = self
            .base_ms
            .saturating_mul(1u64.checked_shl(exponent).unwrap_or(u64::MAX))
            .min(self.max_ms);
        // `as u64` saturates (NaN gives 0) and the product is at most a fifth of `scheduled`.
        let jittered =
            scheduled.saturating_sub((scheduled as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as u64);
        match retry_after {
            Some(ra) => jittered
                .max(u64::try_from(ra.as_millis()).unwrap_or(u64::MAX))
                .min(self.max_ms),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::parse_retry_after;

    const POLICY: RetryPolicy = RetryPolicy {
        base_ms: 1000,
        max_ms: 900_000,
    };

    #[test]
    fn doubles_from_one_second_and_caps_at_fifteen_minutes() {
        let delays: Vec<u64> = (1..=12).map(|n| POLICY.delay_ms(n, 0.0, None)).collect();
        assert_eq!(
            delays,
            [
                1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 512000, 900000, 900000
            ]
        );
        assert_eq!(POLICY.delay_ms(1000, 0.0, None), 900_000, "no overflow");
    }

    #[test]
    fn jitter_only_shortens_and_by_at_most_a_fifth() {
        assert!((3200..=3201).contains(&POLICY.delay_ms(3, 0.999_999, None)));
        for j in [0.0, 0.3, 0.7, 0.99] {
            let d = POLICY.delay_ms(4, j, None);
            assert!((6400..=8000).contains(&d), "{d}");
        }
    }

    #[test]
    fn retry_after_lengthens_up_to_the_cap() {
        assert_eq!(
            POLICY.delay_ms(1, 0.0, Some(Duration::from_secs(30))),
            30_000
        );
        assert_eq!(
            POLICY.delay_ms(5, 0.0, Some(Duration::from_secs(1))),
            16_000
        );
        assert_eq!(
            POLICY.delay_ms(1, 0.0, Some(Duration::from_secs(86_400))),
            900_000
        );
    }

    #[test]
    fn hostile_retry_after_values_never_panic_and_end_at_the_cap() {
        let now = httpdate::parse_http_date("Wed, 25 Nov 2026 20:00:00 GMT").unwrap();
        let huge = parse_retry_after("99999999999999999999", now);
        assert_eq!(huge, Some(Duration::from_secs(u64::MAX)));
        assert_eq!(POLICY.delay_ms(1, 0.5, huge), POLICY.max_ms);
        let far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now);
        assert!(far.is_some_and(|d| d > Duration::from_secs(200 * 365 * 86_400)));
        assert_eq!(POLICY.delay_ms(1, 0.5, far), POLICY.max_ms);
        assert_eq!(
            POLICY.delay_ms(1, 0.0, Some(Duration::MAX)),
            POLICY.max_ms,
            "more milliseconds than a u64 holds"
        );
        for garbage in [
            "",
            " ",
            "-5",
            "+5",
            "1.5",
            "1e9",
            "0x10",
            "NaN",
            "inf",
            "\u{0}",
            "12 34",
            "Wed, 25 Nov 10000 20:00:00 GMT",
            "Wed, 32 Nov 2026 20:00:00 GMT",
            "\u{663}\u{664}", // Arabic-Indic digits are not ASCII digits
        ] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
        assert_eq!(
            parse_retry_after(" 0 ", now),
            Some(Duration::ZERO),
            "whitespace around a number is fine"
        );
    }

    #[test]
    fn jitter_out_of_range_or_nan_and_a_huge_cap_stay_in_bounds() {
        let wide = RetryPolicy {
            base_ms: u64::MAX / 2,
            max_ms: u64::MAX,
        };
        for j in [f64::NAN, f64::INFINITY, -1.0, 2.0, 0.999_999] {
            let d = wide.delay_ms(64, j, None);
            // At most a fifth less (give or take the f64 rounding of so large a number).
            assert!(d >= u64::MAX / 10 * 7, "{j}: {d}");
            let d = POLICY.delay_ms(1, j, None);
            assert!((800..=1000).contains(&d), "{j}: {d}");
        }
    }
}
