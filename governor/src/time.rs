//! Time, one grammar for all of governor: unix seconds (UTC) in memory, RFC 3339 UTC datetimes in files
//! (TOML's native offset datetime, e.g. `2026-11-21T19:40:00Z`), and the CLI's short
//! durations (`90s`, `15m`, `2h`, `1d`).

use std::time::{SystemTime, UNIX_EPOCH};

use toml::value::{Date, Datetime, Offset, Time};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error(
        "`{0}` is not a full RFC 3339 date and time with an offset; write it like \
         2026-11-21T19:40:00Z"
    )]
    Incomplete(String),
    #[error("`{0}` lies before 1970-01-01T00:00:00Z; unix time cannot express it")]
    BeforeEpoch(String),
    #[error("`{0}` is not a date and time; write it like 2026-11-21T19:40:00Z")]
    Unparsable(String),
    #[error("`{0}` is not a duration; write a number and a unit: 90s, 15m, 2h or 1d")]
    Duration(String),
}

/// Seconds since the unix epoch, now (0 if the clock is before it).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (the inverse of `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The TOML datetime (UTC, `Z`, whole seconds) of unix time `secs`.
pub fn to_datetime(secs: u64) -> Datetime {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    Datetime {
        date: Some(Date {
            year: u16::try_from(year).unwrap_or(u16::MAX),
            month: month as u8,
            day: day as u8,
        }),
        time: Some(Time {
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
            nanosecond: 0,
        }),
        offset: Some(Offset::Z),
    }
}

/// Unix seconds of a TOML datetime that has a date, a time and an offset (fractions of a
/// second are dropped).
pub fn from_datetime(dt: &Datetime) -> Result<u64, TimeError> {
    let (Some(date), Some(time), Some(offset)) = (dt.date, dt.time, dt.offset) else {
        return Err(TimeError::Incomplete(dt.to_string()));
    };
    let days = days_from_civil(i64::from(date.year), date.month.into(), date.day.into());
    let local = days * 86_400
        + i64::from(time.hour) * 3600
        + i64::from(time.minute) * 60
        + i64::from(time.second.min(59));
    let offset_secs = match offset {
        Offset::Z => 0,
        Offset::Custom { minutes } => i64::from(minutes) * 60,
    };
    u64::try_from(local - offset_secs).map_err(|_| TimeError::BeforeEpoch(dt.to_string()))
}

/// `2026-11-21T19:40:00Z`.
pub fn rfc3339(secs: u64) -> String {
    to_datetime(secs).to_string()
}

/// Unix seconds of an RFC 3339 text with an offset (`2026-11-21T19:40:00Z`,
/// `2026-11-21T20:40:00+01:00`).
pub fn parse_rfc3339(text: &str) -> Result<u64, TimeError> {
    let dt: Datetime = text
        .trim()
        .parse()
        .map_err(|_| TimeError::Unparsable(text.to_owned()))?;
    from_datetime(&dt)
}

/// Seconds in a short duration: a positive whole number and one unit, `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<u64, TimeError> {
    let bad = || TimeError::Duration(text.to_owned());
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(scale) {
        Some(secs) if secs > 0 => Ok(secs),
        _ => Err(bad()),
    }
}

/// `1d02h03m04s`, leaving out leading zero units.
pub fn span(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m{s:02}s"),
        _ => format!("{d}d{h:02}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_instants() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (1_795_290_000, "2026-11-21T19:40:00Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(secs), text);
            assert_eq!(parse_rfc3339(text), Ok(secs), "{text}");
        }
    }

    #[test]
    fn offsets_are_applied() {
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Ok(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T20:13:20-02:00"),
            Ok(1_700_000_000)
        );
    }

    #[test]
    fn incomplete_or_early_datetimes_are_refused() {
        assert!(matches!(
            parse_rfc3339("2023-11-14T22:13:20"),
            Err(TimeError::Incomplete(_))
        ));
        assert!(matches!(
            parse_rfc3339("2023-11-14"),
            Err(TimeError::Incomplete(_))
        ));
        assert!(matches!(
            parse_rfc3339("1969-12-31T23:59:59Z"),
            Err(TimeError::BeforeEpoch(_))
        ));
        assert!(matches!(
            parse_rfc3339("tomorrow"),
            Err(TimeError::Unparsable(_))
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        for bad in [
            "",
            "15",
            "m",
            "0m",
            "1.5h",
            "-1m",
            "1w",
            "1 m",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spans() {
        assert_eq!(span(59), "59s");
        assert_eq!(span(61), "1m01s");
        assert_eq!(span(86_400 + 3600 + 62), "1d01h01m02s");
    }
}
