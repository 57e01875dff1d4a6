//! Exact decimal amounts, so a rule never computes money in floating point.

use std::fmt;

/// A decimal number: `units × 10^-scale`.
/// Equality and order are by value: `1.50 == 1.5`.
#[derive(Debug, Clone, Copy)]
pub struct Amount {
    units: i128,
    scale: u32,
}

impl Amount {
    pub const ZERO: Amount = Amount { units: 0, scale: 0 };

    /// Parses a plain decimal such as `"49.99"` or `"-3"`.
    pub fn parse(text: &str) -> Option<Amount> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let scale = u32::try_from(fraction.len()).ok()?;
        let units: i128 = format!("{whole}{fraction}").parse().ok()?;
        Some(Amount {
            units: if negative { -units } else { units },
            scale,
        })
    }

    /// A JSON number (as written in the event) or a decimal string.
    pub fn from_json(value: &serde_json::Value) -> Option<Amount> {
        match value {
            serde_json::Value::Number(n) => Amount::parse(&n.to_string()),
            serde_json::Value::String(s) => Amount::parse(s),
            _ => None,
        }
    }

    pub fn whole(n: i64) -> Amount {
        Amount {
            units: i128::from(n),
            scale: 0,
        }
    }

    fn rescaled(self, scale: u32) -> Amount {
        if scale <= self.scale {
            return self;
        }
        Amount {
            units: self.units * 10i128.pow(scale - self.scale),
            scale,
        }
    }

    /// `self × percent / 100`, exactly: `percent("1.5")` takes 1.5 %.
    pub fn percent(self, percent: &str) -> Amount {
        let p = Amount::parse(percent).unwrap_or(Amount::ZERO);
        self * p * Amount { units: 1, scale: 2 }
    }

    pub fn is_positive(self) -> bool {
        self.units > 0
    }

    /// Rounds half away from zero to `scale` decimals.
    pub fn round(self, scale: u32) -> Amount {
        if self.scale <= scale {
            return self.rescaled(scale);
        }
        let divisor = 10i128.pow(self.scale - scale);
        let (q, r) = (self.units / divisor, self.units % divisor);
        let bump = if 2 * r.abs() >= divisor {
            self.units.signum()
        } else {
            0
        };
        Amount {
            units: q + bump,
            scale,
        }
    }
}

impl Ord for Amount {
    fn cmp(&self, other: &Amount) -> std::cmp::Ordering {
        let scale = self.scale.max(other.scale);
        self.rescaled(scale).units.cmp(&other.rescaled(scale).units)
    }
}

impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Amount) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Amount {
    fn eq(&self, other: &Amount) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Amount {}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let digits = self.units.unsigned_abs().to_string();
        if self.scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let scale = self.scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{whole}.{fraction}")
    }
}

impl std::ops::Add for Amount {
    type Output = Amount;

    fn add(self, other: Amount) -> Amount {
        let scale = self.scale.max(other.scale);
        Amount {
            units: self.rescaled(scale).units + other.rescaled(scale).units,
            scale,
        }
    }
}

impl std::ops::Sub for Amount {
    type Output = Amount;

    fn sub(self, other: Amount) -> Amount {
        self + Amount {
            units: -other.units,
            scale: other.scale,
        }
    }
}

impl std::ops::Mul for Amount {
    type Output = Amount;

    fn mul(self, other: Amount) -> Amount {
        Amount {
            units: self.units * other.units,
            scale: self.scale + other.scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(text: &str) -> Amount {
        Amount::parse(text).unwrap_or(Amount::ZERO)
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!((a("49.99") * Amount::whole(10)).to_string(), "499.90");
        assert_eq!((a("0.1") + a("0.2")).to_string(), "0.3");
        assert_eq!(a("100.00").percent("1.5").round(2).to_string(), "1.50");
        assert_eq!(a("2.675").round(2).to_string(), "2.68");
        assert_eq!(a("-2.675").round(2).to_string(), "-2.68");
        assert_eq!((a("250") - a("100")).max(Amount::ZERO).to_string(), "150");
        assert_eq!(a("0.05").to_string(), "0.05");
        assert_eq!(a("1.50"), a("1.5"), "equal by value");
        assert!(a("43") >= a("40.00") && a("9.99") < a("10"));
        assert_eq!(Amount::parse("1e3"), None);
    }
}
