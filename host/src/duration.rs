//! Go duration syntax (`"24h"`, `"1h30m"`, `"90s"`, `"1.5h"`), as the API uses for windows and expiries.

use chrono::Duration;
use rust_decimal::prelude::ToPrimitive;

/// The longest duration accepted: 100 years of 365 days, so that any timestamp plus a duration stays a valid time.
pub const MAX_HOURS: i64 = 876_000;

/// Parses a positive Go duration of at most [`MAX_HOURS`]; units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`. `None`
/// when malformed, not positive or too long.
pub fn parse(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: i128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        let value = rust_decimal::Decimal::from_str_exact(number).ok()?;
        let ns = value
            .checked_mul(rust_decimal::Decimal::from(scale))?
            .trunc();
        total_ns = total_ns.checked_add(ns.to_i128()?)?;
        rest = next;
    }
    let max_ns = i128::from(MAX_HOURS) * 3_600_000_000_000;
    let ns = i64::try_from(total_ns)
        .ok()
        .filter(|ns| *ns > 0 && i128::from(*ns) <= max_ns)?;
    Some(Duration::nanoseconds(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("24h"), Some(Duration::hours(24)));
        assert_eq!(parse("1h30m"), Some(Duration::minutes(90)));
        assert_eq!(parse("1.5h"), Some(Duration::minutes(90)));
        assert_eq!(parse("90s"), Some(Duration::seconds(90)));
        assert_eq!(parse("250ms"), Some(Duration::milliseconds(250)));
        for bad in ["", "24", "h", "1d", "-1h", "0s", "1h 30m", "1..5h"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refuses_durations_beyond_the_maximum_without_overflowing() {
        let max = format!("{MAX_HOURS}h");
        assert_eq!(parse(&max), Some(Duration::hours(MAX_HOURS)));
        for too_long in [
            format!("{}h", MAX_HOURS + 1),
            "100000000000000000000h".into(),
            "79228162514264337593543950335h".into(),
            "9999999999999999999999999999999999h".into(),
            format!("{MAX_HOURS}h{MAX_HOURS}h"),
        ] {
            assert_eq!(parse(&too_long), None, "{too_long:?}");
        }
    }
}
