//! Go duration syntax (`"24h"`, `"1h30m"`, `"90s"`, `"1.5h"`), as the API uses for windows and expiries.

use chrono::Duration;
use rust_decimal::prelude::ToPrimitive;

/// Parses a positive Go duration; units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`. `None` when malformed or not positive.
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
        let ns = (value * rust_decimal::Decimal::from(scale)).trunc();
        total_ns += ns.to_i128()?;
        rest = next;
    }
    let ns = i64::try_from(total_ns).ok().filter(|ns| *ns > 0)?;
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
}
