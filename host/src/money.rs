//! Amounts: decimal strings on the wire, `rust_decimal::Decimal` in Rust, `NUMERIC` in Postgres. Never floats,
//! except where a CEL expression produced one and it is converted exactly here.

use rust_decimal::Decimal;
use std::str::FromStr;

/// The most digits an amount may have before the decimal point, wherever it enters (the API, a CEL
/// expression, a wasm rule, a counter). With 18 digits, a balance would need tens of billions of the largest
/// credits to leave what `Decimal` (28 digits) can hold, so sums of amounts cannot overflow in practice.
pub const MAX_INTEGER_DIGITS: u32 = 18;

/// Why a text or number is not an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not a plain decimal string, or more decimals than a `Decimal` holds exactly.
    NotDecimal,
    /// [`MAX_INTEGER_DIGITS`] digits or more before the decimal point.
    TooLarge,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::NotDecimal => f.write_str("not a decimal"),
            Invalid::TooLarge => write!(
                f,
                "too large (at most {MAX_INTEGER_DIGITS} digits before the decimal point)"
            ),
        }
    }
}

/// Parses a plain decimal string (`"10"`, `"-1.50"`); rejects exponents, spaces and empty strings.
pub fn parse(text: &str) -> Option<Decimal> {
    parse_amount(text).ok()
}

/// [`parse`], saying why a text is refused. The text must be exact: digits beyond what a `Decimal` holds
/// are refused, not rounded away.
pub fn parse_amount(text: &str) -> Result<Decimal, Invalid> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|&c| c == '.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    if !plain {
        return Err(Invalid::NotDecimal);
    }
    let whole = digits.split('.').next().unwrap_or_default();
    if whole.trim_start_matches('0').len() > MAX_INTEGER_DIGITS as usize {
        return Err(Invalid::TooLarge);
    }
    Decimal::from_str_exact(text).map_err(|_| Invalid::NotDecimal)
}

/// The amount, when it is within [`MAX_INTEGER_DIGITS`].
pub fn bounded(amount: Decimal) -> Result<Decimal, Invalid> {
    let limit = Decimal::from(10u64.pow(MAX_INTEGER_DIGITS));
    if amount.abs() < limit {
        Ok(amount)
    } else {
        Err(Invalid::TooLarge)
    }
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
    fn refuses_amounts_beyond_the_bound_or_decimals_precision() {
        let largest = "9".repeat(MAX_INTEGER_DIGITS as usize);
        assert_eq!(
            parse_amount(&largest),
            largest.parse().map_err(|_| Invalid::NotDecimal)
        );
        assert_eq!(
            parse_amount(&format!("-{largest}.5")).map(|d| d.is_sign_negative()),
            Ok(true)
        );
        assert!(parse_amount(&format!("000{largest}")).is_ok());
        for too_large in [
            format!("1{largest}"),
            "79228162514264337593543950335".into(),
            "1".repeat(40),
        ] {
            assert_eq!(
                parse_amount(&too_large),
                Err(Invalid::TooLarge),
                "{too_large}"
            );
        }
        // 30 significant digits do not fit a Decimal: refused, not rounded.
        assert_eq!(
            parse_amount("1.00000000000000000000000000001"),
            Err(Invalid::NotDecimal)
        );
        assert_eq!(
            bounded(Decimal::from(10u64.pow(MAX_INTEGER_DIGITS))),
            Err(Invalid::TooLarge)
        );
        assert_eq!(bounded(Decimal::MAX), Err(Invalid::TooLarge));
        assert_eq!(bounded(Decimal::from(-5)), Ok(Decimal::from(-5)));
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
