//! Durations as policies write them: a whole number and a unit, `"90s"`, `"15m"`, `"2h"`,
//! `"1d"`.

use std::time::Duration;

const HOW: &str = "write a whole number and a unit: \"90s\", \"15m\", \"2h\" or \"1d\"";

/// Parses `"90s"`, `"15m"`, `"2h"` or `"1d"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() || digits.len() > 9 {
        return Err(format!("`{text}` is not a duration; {HOW}"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; {HOW}"))?;
    let secs_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "" => return Err(format!("`{text}` has no unit; {HOW}")),
        other => return Err(format!("`{other}` in `{text}` is not a unit; {HOW}")),
    };
    Ok(Duration::from_secs(n * secs_per))
}

/// `d` the way a policy would write it: the largest unit that divides it.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn bad() {
        for bad in [
            "",
            "h",
            "1",
            "1w",
            "1.5h",
            "-1h",
            "1 h",
            "1h30m",
            "9999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("1").unwrap_err().contains("no unit"));
        assert!(parse_duration("3w").unwrap_err().contains("`w`"));
    }
}
