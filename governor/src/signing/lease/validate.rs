//! The shape of a lease body's fields. Meaning (does the agent exist, is the class known,
//! does the policy lease it here) is the daemon's business; this only refuses what no
//! policy could mean: empty names, control characters, relative paths, malformed addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{LeaseBody, LeaseError};

/// Longest target, in bytes (PATH_MAX).
const MAX_TARGET: usize = 4096;
/// Longest reason, in bytes.
const MAX_REASON: usize = 4096;
/// Longest name-like field (id, agent, host, class, ticket, request), in bytes.
const MAX_NAME: usize = 256;

/// A lease id: letters, digits, `-`, `_`, `.`.
pub fn check_id(id: &str) -> Result<(), String> {
    check_name(id)?;
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("use only letters, digits, `-`, `_` and `.`".into());
    }
    Ok(())
}

/// A one-line, non-empty name without control characters.
pub fn check_name(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > MAX_NAME {
        return Err(format!("it is longer than {MAX_NAME} bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err("it contains a control character".into());
    }
    Ok(())
}

/// Free text: non-empty; newlines and tabs allowed, other control characters not (they
/// could rewrite an operator's terminal).
pub fn check_reason(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("it is empty; say why the agent needs this".into());
    }
    if s.len() > MAX_REASON {
        return Err(format!("it is longer than {MAX_REASON} bytes"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("it contains a control character".into());
    }
    Ok(())
}

/// An action class name: lowercase letters, digits, `-` and `_`.
pub fn check_class(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > MAX_NAME
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
    {
        return Err(format!(
            "`{s}` is not a class name (lowercase letters, digits, `-`, `_`; e.g. unlink)"
        ));
    }
    Ok(())
}

/// A target: an absolute path, or `ADDR[/PREFIX][:PORT]` (IPv6 in brackets when a port
/// follows: `[::1]:5432`, `[fd00::]/8:443`; bare `::1` or `fd00::/8` without one).
pub fn check_target(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.contains('\0') {
        return Err("it contains a NUL byte".into());
    }
    if s.len() > MAX_TARGET {
        return Err(format!("it is longer than {MAX_TARGET} bytes"));
    }
    if s.starts_with('/') || address(s) {
        return Ok(());
    }
    Err(format!(
        "`{s}` is neither an absolute path nor an address like 10.0.0.5:5432, \
         10.0.0.0/8, [::1]:5432 or fd00::/8"
    ))
}

/// Whether `s` is `ADDR[/PREFIX][:PORT]`.
fn address(s: &str) -> bool {
    let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|p| p > 0);
    let prefix_ok =
        |p: Option<&str>, max: u8| p.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= max));
    if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return false;
        }
        let (prefix, port) = match after.rsplit_once(':') {
            Some((before, port)) => (before, Some(port)),
            None => (after, None),
        };
        let prefix = match prefix {
            "" => None,
            p => match p.strip_prefix('/') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        return prefix_ok(prefix, 128) && port.is_none_or(port_ok);
    }
    let (addr, port) = match s.matches(':').count() {
        0 => (s, None),
        1 => match s.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => return false,
        },
        // Bare IPv6, no port.
        _ => {
            let (addr, prefix) = split_prefix(s);
            return addr.parse::<Ipv6Addr>().is_ok() && prefix_ok(prefix, 128);
        }
    };
    let (addr, prefix) = split_prefix(addr);
    addr.parse::<Ipv4Addr>().is_ok() && prefix_ok(prefix, 32) && port.is_none_or(port_ok)
}

fn split_prefix(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    }
}

/// Splits a `--scope CLASS:TARGET` at its first `:`.
pub fn split_scope(text: &str) -> Result<(String, String), String> {
    let Some((class, target)) = text.split_once(':') else {
        return Err(format!(
            "scope `{text}` has no `:`; write CLASS:TARGET, e.g. unlink:/srv/app/cache.db"
        ));
    };
    check_class(class)?;
    check_target(target)?;
    Ok((class.to_owned(), target.to_owned()))
}

impl LeaseBody {
    /// Checks every field's shape.
    pub fn validate(&self) -> Result<(), LeaseError> {
        let field = |field: String| move |why| LeaseError::Invalid { field, why };
        check_id(&self.id).map_err(field("id".into()))?;
        check_name(&self.agent).map_err(field("agent".into()))?;
        check_name(&self.host).map_err(field("host".into()))?;
        check_reason(&self.reason).map_err(field("reason".into()))?;
        if let Some(t) = &self.ticket {
            check_name(t).map_err(field("ticket".into()))?;
        }
        if let Some(r) = &self.request {
            check_name(r).map_err(field("request".into()))?;
        }
        if self.scopes.is_empty() {
            return Err(LeaseError::Invalid {
                field: "scope".into(),
                why: "a lease needs at least one scope".into(),
            });
        }
        for (i, s) in self.scopes.iter().enumerate() {
            check_class(&s.class).map_err(field(format!("scope[{i}].class")))?;
            check_target(&s.target).map_err(field(format!("scope[{i}].target")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        for good in [
            "/srv/prod/db",
            "/",
            "10.0.0.5",
            "10.0.0.5:5432",
            "10.0.0.0/8",
            "10.0.0.0/8:443",
            "::1",
            "fd00::/8",
            "[::1]:5432",
            "[fd00::]/8:443",
            "[::1]",
        ] {
            assert_eq!(check_target(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "srv/prod",
            "/a\0b",
            "10.0.0.5:0",
            "10.0.0.5:70000",
            "10.0.0.0/33",
            "10.0.0",
            "::1/129",
            "[::1]:x",
            "[::1",
            "[10.0.0.1]:80",
            "[::1]8",
            "example.com:443",
        ] {
            assert!(check_target(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_split_at_the_first_colon() {
        assert_eq!(
            split_scope("connect:10.0.0.5:5432"),
            Ok(("connect".into(), "10.0.0.5:5432".into()))
        );
        assert_eq!(
            split_scope("unlink:/srv/a:b"),
            Ok(("unlink".into(), "/srv/a:b".into()))
        );
        assert!(split_scope("unlink").is_err());
        assert!(split_scope("Unlink:/srv").is_err());
        assert!(split_scope("unlink:srv").is_err());
    }

    #[test]
    fn names_and_reasons() {
        assert!(check_id("l-abc_1.2").is_ok());
        assert!(check_id("l abc").is_err());
        assert!(check_name("agent\u{1b}[2J").is_err());
        assert!(check_name(" ").is_err());
        assert!(check_reason("two\nlines\tok").is_ok());
        assert!(check_reason("bell\u{7}").is_err());
        assert!(check_reason("").is_err());
    }
}
