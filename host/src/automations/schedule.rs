//! When automations fire: cron expressions in an IANA timezone, dates read from a participant's attribute,
//! intervals and counter thresholds. Pure time arithmetic; the scheduler asks, this answers.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::str::FromStr;

use super::StateScheduleType;

/// A checked cron expression with the timezone it is read in.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    // Boxed: a parsed cron is large, and schedules are moved around by value.
    cron: Box<croner::Cron>,
    tz: Tz,
}

impl CronSchedule {
    /// Five fields (or six, with seconds); `CRON_TZ=`/`TZ=` prefixes are refused: the timezone is its own field.
    pub fn parse(expression: &str, tz: Tz) -> Result<CronSchedule, String> {
        if expression.contains("TZ=") {
            return Err(
                "give the timezone in trigger.timezone, not as a CRON_TZ or TZ prefix".into(),
            );
        }
        let cron = croner::Cron::from_str(expression)
            .map_err(|e| format!("invalid cron expression: {e}"))?;
        let schedule = CronSchedule {
            cron: Box::new(cron),
            tz,
        };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(format!("cron expression {expression} never matches a date"));
        }
        Ok(schedule)
    }

    /// The first fire strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// An IANA timezone name.
pub fn timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("{name} is not an IANA timezone such as Europe/Paris"))
}

/// A participant_state automation's per-participant schedule, from its `schedule_type` and `schedule_config`.
#[derive(Debug, Clone)]
pub enum StateSchedule {
    /// Every year on the month and day an attribute holds (`"06-15"` or `"2024-06-15"`), at `time` in the
    /// automation's timezone. February 29 falls on February 28 in other years.
    AttributeDate {
        attribute: String,
        time: NaiveTime,
        tz: Tz,
    },
    /// Every `every` from when the participant was subscribed.
    Interval {
        every: chrono::Duration,
    },
    Cron(CronSchedule),
    /// Once, when a counter reaches `threshold`, looked at every `check_every`.
    Threshold {
        counter: String,
        threshold: Decimal,
        check_every: chrono::Duration,
    },
}

/// What `schedule_config` may hold, by schedule type, as the API documents it.
pub const CONFIG_FIELDS: &str = "ATTRIBUTE_DATE {attribute, time?: \"HH:MM\"}, INTERVAL {interval: Go duration}, \
     CRON {cron_expression}, THRESHOLD {counter, threshold, check_every?: Go duration}";

/// The least time between two looks at a threshold.
const LEAST_CHECK: chrono::Duration = chrono::Duration::minutes(1);
const DEFAULT_CHECK: chrono::Duration = chrono::Duration::hours(1);

impl StateSchedule {
    /// Reads `config`; the error names the field at fault (within `schedule_config`) and why.
    pub fn parse(
        kind: StateScheduleType,
        config: &Map<String, Value>,
        tz: Tz,
    ) -> Result<StateSchedule, (&'static str, String)> {
        let text = |key: &'static str| -> Result<Option<&str>, (&'static str, String)> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.as_str())),
                Some(_) => Err((key, format!("{key} must be a non-empty string"))),
            }
        };
        let required = |key: &'static str| -> Result<&str, (&'static str, String)> {
            text(key)?.ok_or((key, format!("{key} is required for {kind}")))
        };
        let duration = |key: &'static str, text: &str| {
            crate::duration::parse(text).ok_or((
                key,
                format!("{key} must be a positive Go duration such as \"720h\""),
            ))
        };
        match kind {
            StateScheduleType::AttributeDate => {
                let attribute = required("attribute")?.to_owned();
                let time = match text("time")? {
                    None => NaiveTime::MIN,
                    Some(t) => NaiveTime::parse_from_str(t, "%H:%M")
                        .map_err(|_| ("time", "time must be HH:MM, 24-hour".to_owned()))?,
                };
                Ok(StateSchedule::AttributeDate {
                    attribute,
                    time,
                    tz,
                })
            }
            StateScheduleType::Interval => Ok(StateSchedule::Interval {
                every: duration("interval", required("interval")?)?,
            }),
            StateScheduleType::Cron => CronSchedule::parse(required("cron_expression")?, tz)
                .map(StateSchedule::Cron)
                .map_err(|m| ("cron_expression", m)),
            StateScheduleType::Threshold => {
                let counter = required("counter")?.to_owned();
                let threshold = match config.get("threshold") {
                    Some(Value::Number(n)) => Decimal::from_str(&n.to_string()).ok(),
                    Some(Value::String(s)) => Decimal::from_str(s).ok(),
                    _ => None,
                }
                .ok_or((
                    "threshold",
                    "threshold is required: a number the counter must reach".to_owned(),
                ))?;
                let check_every = match text("check_every")? {
                    None => DEFAULT_CHECK,
                    Some(t) => duration("check_every", t)?,
                };
                if check_every < LEAST_CHECK {
                    return Err(("check_every", "check_every must be at least 1m".into()));
                }
                Ok(StateSchedule::Threshold {
                    counter,
                    threshold,
                    check_every,
                })
            }
        }
    }
}

/// The month and day an attribute value names: `"MM-DD"` or `"YYYY-MM-DD"`.
pub fn month_day(value: &str) -> Option<(u32, u32)> {
    let value = value.trim();
    let (month, day) = match value.len() {
        5 => (value.get(0..2)?, value.get(3..5)?),
        10 => {
            NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
            (value.get(5..7)?, value.get(8..10)?)
        }
        _ => return None,
    };
    let (month, day): (u32, u32) = (month.parse().ok()?, day.parse().ok()?);
    // 2024 is a leap year: every month and day that ever exists is a date in it.
    NaiveDate::from_ymd_opt(2024, month, day)?;
    Some((month, day))
}

/// The first time strictly after `after` that falls on `month`/`day` at `time` in `tz`.
pub fn next_date(
    (month, day): (u32, u32),
    time: NaiveTime,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let year = after.with_timezone(&tz).year();
    (year - 1..=year + 1).find_map(|y| {
        let date = NaiveDate::from_ymd_opt(y, month, day)
            .or_else(|| NaiveDate::from_ymd_opt(y, month, day - 1))?;
        let at = tz
            .from_local_datetime(&date.and_time(time))
            .earliest()?
            .with_timezone(&Utc);
        (at > after).then_some(at)
    })
}

/// The first of `start + k * every` (k ≥ 1) strictly after `after`: missed periods are not made up.
pub fn next_period(
    start: DateTime<Utc>,
    every: chrono::Duration,
    after: DateTime<Utc>,
) -> DateTime<Utc> {
    let every_ms = every.num_milliseconds().max(1);
    let elapsed = (after - start).num_milliseconds().max(0);
    start + chrono::Duration::milliseconds((elapsed / every_ms + 1).saturating_mul(every_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_birthday_falls_at_midnight_in_the_timezone() {
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let next = next_date((6, 15), NaiveTime::MIN, tokyo, at("2030-01-01T00:00:00Z"));
        assert_eq!(next, Some(at("2030-06-14T15:00:00Z")));
        let after_it = next_date((6, 15), NaiveTime::MIN, tokyo, at("2030-06-14T15:00:00Z"));
        assert_eq!(after_it, Some(at("2031-06-14T15:00:00Z")));
    }

    #[test]
    fn february_29_is_kept_on_february_28_in_other_years() {
        let next = next_date((2, 29), NaiveTime::MIN, Tz::UTC, at("2031-01-01T00:00:00Z"));
        assert_eq!(next, Some(at("2031-02-28T00:00:00Z")));
    }

    #[test]
    fn attribute_dates_are_month_day_or_a_full_date() {
        assert_eq!(month_day("06-15"), Some((6, 15)));
        assert_eq!(month_day("1990-02-28"), Some((2, 28)));
        assert_eq!(month_day("02-29"), Some((2, 29)));
        for bad in ["13-01", "6-15", "1990-02-30", "tomorrow", ""] {
            assert_eq!(month_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn cron_is_read_in_its_timezone() {
        let paris = timezone("Europe/Paris").unwrap();
        let cron = CronSchedule::parse("0 9 * * *", paris).unwrap();
        assert_eq!(
            cron.next_after(at("2030-07-01T12:00:00Z")),
            Some(at("2030-07-02T07:00:00Z"))
        );
        assert!(CronSchedule::parse("CRON_TZ=UTC 0 9 * * *", paris).is_err());
        assert!(CronSchedule::parse("0 0 30 2 *", paris).is_err());
        assert!(timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn missed_periods_are_skipped_not_made_up() {
        let start = at("2030-01-01T00:00:00Z");
        let day = chrono::Duration::days(1);
        assert_eq!(next_period(start, day, start), at("2030-01-02T00:00:00Z"));
        assert_eq!(
            next_period(start, day, at("2030-01-05T12:00:00Z")),
            at("2030-01-06T00:00:00Z")
        );
    }
}
