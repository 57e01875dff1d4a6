//! Amounts: decimal strings on the wire, `rust_decimal::Decimal` in Rust, `NUMERIC` in Postgres. Never floats,
//! except where a CEL expression produced one and it is converted exactly here.

use rust_decimal::Decimal;
use std::str::FromStr;

/// Parses a plain decimal string (`"10"`, `"-1.50"`); rejects exponents, spaces and empty strings.
pub fn parse(text: &str) -> Option<Decimal> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|&c| c == '.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    if !plain {
        return None;
    }
    Decimal::from_str(text).ok()
}

/// An amount on the wire, in the document: a plain decimal string as `parse` reads it.
pub struct Amount;

/// An amount that must be greater than zero: some digit is not 0.
pub struct PositiveAmount;

fn decimal_schema(
    pattern: &str,
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(pattern))
        .examples(["10.50"])
        .description(Some(description))
        .into()
}

impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        decimal_schema(
            r"^-?[0-9]+(\.[0-9]+)?$",
            "A decimal string; no exponent, at most the asset's scale in decimals.",
        )
    }
}

impl utoipa::ToSchema for Amount {}

impl utoipa::PartialSchema for PositiveAmount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        decimal_schema(
            r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$",
            "A positive decimal string; no exponent, at most the asset's scale in decimals.",
        )
    }
}

impl utoipa::ToSchema for PositiveAmount {}

/// True when `amount` needs no more than `scale` decimal places (trailing zeros do not count).
pub fn fits_scale(amount: Decimal, scale: i16) -> bool {
    i64::from(amount.normalize().scale()) <= i64::from(scale)
}

/// Renders an amount with exactly the asset's number of decimals (`"10"`, `"1500.00"`).
pub fn format(amount: Decimal, scale: i16) -> String {
    let mut value = amount.normalize();
    // u32 conversion cannot fail: scale is 0..=18 by schema.
    value.rescale(u32::try_from(scale).unwrap_or(0));
    value.to_string()
}

/// Converts a CEL double to the decimal it prints as (shortest round-trip form), so `49.99 * 10` is
/// `499.90000000000003`, not a silently rounded `499.9`. Non-finite values have no decimal.
pub fn from_f64(value: f64) -> Option<Decimal> {
    if !value.is_finite() {
        return None;
    }
    Decimal::from_str(&format!("{value}"))
        .ok()
        .or_else(|| Decimal::from_scientific(&format!("{value:e}")).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_plain_decimals() {
        assert_eq!(parse("10"), Some(Decimal::from(10)));
        assert_eq!(parse("-1.50"), Some(Decimal::new(-150, 2)));
        for bad in [
            "", "-", "1e3", " 1", "1.", ".5", "1.2.3", "abc", "+1", "NaN",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn scale_ignores_trailing_zeros() {
        assert!(fits_scale(parse("100.00").unwrap_or_default(), 0));
        assert!(!fits_scale(parse("1.009").unwrap_or_default(), 2));
        assert!(fits_scale(parse("1.01").unwrap_or_default(), 2));
    }

    #[test]
    fn formats_at_asset_scale() {
        assert_eq!(format(Decimal::from(10), 0), "10");
        assert_eq!(format(Decimal::from(1500), 2), "1500.00");
        assert_eq!(format(parse("2.500").unwrap_or_default(), 1), "2.5");
    }

    #[test]
    fn doubles_keep_their_printed_digits() {
        assert_eq!(
            from_f64(49.99 * 10.0).map(|d| d.to_string()),
            Some("499.90000000000003".into())
        );
        assert_eq!(from_f64(2.5), Some(Decimal::new(25, 1)));
        assert_eq!(from_f64(f64::NAN), None);
    }
}
