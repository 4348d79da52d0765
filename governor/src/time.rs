//! Time, one grammar for all of governor: unix seconds (UTC) in memory, RFC 3339 datetimes in
//! files and on the command line, and one short duration grammar.
//!
//! - **Datetimes**: RFC 3339 with an offset, as TOML writes it (`2026-11-21T19:40:00Z`,
//!   `2026-11-21T20:40:00+01:00`). `toml` reads the syntax (so lease and key files and the CLI
//!   accept exactly the same texts); `jiff` does the calendar arithmetic. Fractions of a second
//!   are dropped, a leap second counts as :59.
//! - **Durations**: a whole number of at most nine digits and one unit, `s`, `m`, `h` or `d`
//!   (`90s`, `15m`, `2h`, `1d`). [`parse_duration`] is the one parser: policy (`max_lease_ttl`),
//!   lease and request TTLs, `lineage prune --retain` and lineage `--since`/`--until` all use it.
//!   Zero parses; a caller that needs a positive duration says so with
//!   [`parse_positive_duration`] or its own check.
//!
//! May import: nothing of governor's (std, `toml`, `jiff`, `thiserror`). Imported by everyone.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::{civil, SignedDuration};
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
}

/// How to write a duration, said by every duration error.
const HOW: &str = "write a whole number and a unit: 90s, 15m, 2h or 1d";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("`{0}` is not a duration; {HOW}")]
    NotADuration(String),
    #[error("`{0}` has no unit; {HOW}")]
    NoUnit(String),
    #[error("`{unit}` in `{text}` is not a unit; {HOW}")]
    NotAUnit { unit: String, text: String },
    #[error("`{0}` is zero; give a positive duration: 90s, 15m, 2h or 1d")]
    Zero(String),
}

/// Seconds since the unix epoch, now (0 if the clock is before it).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 1970-01-01T00:00:00, the civil (offset-free) origin of unix time.
const EPOCH: civil::DateTime = civil::date(1970, 1, 1).at(0, 0, 0, 0);

/// The TOML datetime (UTC, `Z`, whole seconds) of unix time `secs`; times past the last second
/// of 9999, which RFC 3339 cannot write, read as that last second.
pub fn to_datetime(secs: u64) -> Datetime {
    let dt = i64::try_from(secs)
        .ok()
        .and_then(|s| EPOCH.checked_add(SignedDuration::from_secs(s)).ok())
        .unwrap_or(civil::DateTime::MAX);
    // From 1970 to 9999, every field is in range of its unsigned TOML field.
    let field = |v: i8| u8::try_from(v).unwrap_or(0);
    Datetime {
        date: Some(Date {
            year: u16::try_from(dt.year()).unwrap_or(0),
            month: field(dt.month()),
            day: field(dt.day()),
        }),
        time: Some(Time {
            hour: field(dt.hour()),
            minute: field(dt.minute()),
            second: field(dt.second()),
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
    let unparsable = || TimeError::Unparsable(dt.to_string());
    let small = |v: u8| i8::try_from(v).map_err(|_| unparsable());
    let local = civil::DateTime::new(
        i16::try_from(date.year).map_err(|_| unparsable())?,
        small(date.month)?,
        small(date.day)?,
        small(time.hour)?,
        small(time.minute)?,
        small(time.second.min(59))?,
        0,
    )
    .map_err(|_| unparsable())?;
    let offset_secs = match offset {
        Offset::Z => 0,
        Offset::Custom { minutes } => i64::from(minutes) * 60,
    };
    let secs = local.duration_since(EPOCH).as_secs() - offset_secs;
    u64::try_from(secs).map_err(|_| TimeError::BeforeEpoch(dt.to_string()))
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

/// Seconds in a duration: a whole number of at most nine digits and one unit, `s`, `m`, `h`
/// or `d`. Zero parses (`0s`); see [`parse_positive_duration`].
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() || digits.len() > 9 {
        return Err(DurationError::NotADuration(text.to_owned()));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| DurationError::NotADuration(text.to_owned()))?;
    let secs_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "" => return Err(DurationError::NoUnit(text.to_owned())),
        other => {
            return Err(DurationError::NotAUnit {
                unit: other.to_owned(),
                text: text.to_owned(),
            })
        }
    };
    // At most 999_999_999 days: far inside u64.
    Ok(n * secs_per)
}

/// [`parse_duration`] for the places where zero means nothing (lease and request TTLs, a time
/// ago): `0s` is refused.
pub fn parse_positive_duration(text: &str) -> Result<u64, DurationError> {
    match parse_duration(text)? {
        0 => Err(DurationError::Zero(text.to_owned())),
        secs => Ok(secs),
    }
}

/// `secs` the way a policy would write it: the largest unit that divides it.
pub fn format_duration(secs: u64) -> String {
    match secs {
        0 => "0s".to_owned(),
        _ if secs.is_multiple_of(86_400) => format!("{}d", secs / 86_400),
        _ if secs.is_multiple_of(3600) => format!("{}h", secs / 3600),
        _ if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
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
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(secs), text);
            assert_eq!(parse_rfc3339(text), Ok(secs), "{text}");
        }
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn offsets_fractions_and_leap_seconds() {
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Ok(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T20:13:20-02:00"),
            Ok(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.999Z"), Ok(1_700_000_000));
        assert_eq!(parse_rfc3339("2016-12-31T23:59:60Z"), Ok(1_483_228_799));
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59-23:59"),
            Ok(253_402_300_799 + 23 * 3600 + 59 * 60)
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
            parse_rfc3339("1970-01-01T00:30:00+01:00"),
            Err(TimeError::BeforeEpoch(_))
        ));
        for bad in ["tomorrow", "2023-02-29T00:00:00Z", "2023-11-14T24:00:00Z"] {
            assert!(
                matches!(parse_rfc3339(bad), Err(TimeError::Unparsable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert_eq!(parse_duration(" 7d "), Ok(7 * 86_400));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("999999999d"), Ok(999_999_999 * 86_400));
        for bad in [
            "",
            "15",
            "m",
            "h",
            "1",
            "1.5h",
            "-1m",
            "+1m",
            "1w",
            "1 m",
            "1h30m",
            "9999999999s",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(parse_duration("1"), Err(DurationError::NoUnit(_))));
        assert!(parse_duration("1")
            .unwrap_err()
            .to_string()
            .contains("no unit"));
        assert!(parse_duration("3w")
            .unwrap_err()
            .to_string()
            .contains("`w`"));
        assert!(parse_duration("h")
            .unwrap_err()
            .to_string()
            .contains("is not a duration"));
    }

    #[test]
    fn positive_durations_refuse_zero() {
        assert_eq!(parse_positive_duration("90s"), Ok(90));
        for zero in ["0s", "0m", "000h", "0d"] {
            assert_eq!(
                parse_positive_duration(zero),
                Err(DurationError::Zero(zero.to_owned()))
            );
        }
        assert!(matches!(
            parse_positive_duration("1w"),
            Err(DurationError::NotAUnit { .. })
        ));
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration(7200), "2h");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(7 * 86_400), "7d");
        assert_eq!(span(59), "59s");
        assert_eq!(span(61), "1m01s");
        assert_eq!(span(86_400 + 3600 + 62), "1d01h01m02s");
    }
}
