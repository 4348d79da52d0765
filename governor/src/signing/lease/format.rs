//! The lease file: TOML, body fields at the top level, then `[[scope]]` and `[[signature]]`
//! tables; times are RFC 3339 UTC datetimes, signatures base64. Unknown fields are refused.
//! Formatting is free (the signatures cover the canonical encoding, not the text).

use std::path::Path;

use serde::Deserialize;
use toml::{value::Datetime, Spanned};

use super::{validate, Lease, LeaseBody, LeaseError, Pin, Role, Scope, Signature};
use crate::{
    host::write,
    signing::{keys::KeyId, line_of, toml_error},
    time,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLease {
    version: Spanned<u32>,
    id: Spanned<String>,
    agent: Spanned<String>,
    host: Spanned<String>,
    not_before: Spanned<Datetime>,
    not_after: Spanned<Datetime>,
    reason: Spanned<String>,
    #[serde(default)]
    ticket: Option<Spanned<String>>,
    #[serde(default)]
    request: Option<Spanned<String>>,
    #[serde(default)]
    scope: Vec<Spanned<RawScope>>,
    #[serde(default)]
    signature: Vec<Spanned<RawSignature>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    class: Spanned<String>,
    target: Spanned<String>,
    #[serde(default)]
    pin: Option<Spanned<RawPin>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    dev: Spanned<Number>,
    ino: Spanned<Number>,
}

/// A u64 as a TOML integer, or as a decimal string when it exceeds TOML's i64.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    key_id: Spanned<String>,
    operator: Spanned<String>,
    role: Spanned<Role>,
    signed_at: Spanned<Datetime>,
    signature: Spanned<String>,
}

/// Converts raw fields, each error located at its field.
struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn err(
        &self,
        field: impl Into<String>,
        span: std::ops::Range<usize>,
    ) -> impl FnOnce(String) -> LeaseError + '_ {
        let field = field.into();
        move |why| LeaseError::Field {
            origin: self.origin.to_owned(),
            line: line_of(self.text, span.start),
            field,
            why,
        }
    }

    fn check(
        &self,
        field: impl Into<String>,
        v: &Spanned<String>,
        f: fn(&str) -> Result<(), String>,
    ) -> Result<String, LeaseError> {
        f(v.get_ref()).map_err(self.err(field, v.span()))?;
        Ok(v.get_ref().clone())
    }

    fn time(&self, field: impl Into<String>, v: &Spanned<Datetime>) -> Result<u64, LeaseError> {
        time::from_datetime(v.get_ref()).map_err(|e| self.err(field, v.span())(e.to_string()))
    }

    fn number(&self, field: String, v: &Spanned<Number>) -> Result<u64, LeaseError> {
        match v.get_ref() {
            Number::Int(n) => Ok(*n),
            Number::Text(t) => t.parse().map_err(|_| {
                self.err(field, v.span())(format!(
                    "`{t}` is not a whole number from 0 to 18446744073709551615"
                ))
            }),
        }
    }
}

impl Lease {
    /// Parses a lease file's text; `origin` (a path, or e.g. `stdin`) names it in errors.
    /// Checks the shape of every field, not the signatures (see `verify`).
    pub fn parse(text: &str, origin: &str) -> Result<Lease, LeaseError> {
        let raw: RawLease = toml::from_str(text).map_err(|e| {
            let (line, message) = toml_error(text, &e);
            LeaseError::Syntax {
                origin: origin.to_owned(),
                line,
                message,
            }
        })?;
        let cx = Ctx { text, origin };
        let opt = |name: &str, v: &Option<Spanned<String>>| {
            v.as_ref()
                .map(|v| cx.check(name, v, validate::check_name))
                .transpose()
        };
        if raw.scope.is_empty() {
            return Err(cx.err("scope", 0..0)(
                "a lease needs at least one [[scope]]; issue it again with --scope".into(),
            ));
        }
        let mut scopes = Vec::with_capacity(raw.scope.len());
        for (i, s) in raw.scope.iter().enumerate() {
            let s = s.get_ref();
            let pin = match &s.pin {
                None => None,
                Some(p) => Some(Pin {
                    dev: cx.number(format!("scope[{i}].pin.dev"), &p.get_ref().dev)?,
                    ino: cx.number(format!("scope[{i}].pin.ino"), &p.get_ref().ino)?,
                }),
            };
            scopes.push(Scope {
                class: cx.check(format!("scope[{i}].class"), &s.class, validate::check_class)?,
                target: cx.check(
                    format!("scope[{i}].target"),
                    &s.target,
                    validate::check_target,
                )?,
                pin,
            });
        }
        let body = LeaseBody {
            version: *raw.version.get_ref(),
            id: cx.check("id", &raw.id, validate::check_id)?,
            agent: cx.check("agent", &raw.agent, validate::check_name)?,
            host: cx.check("host", &raw.host, validate::check_name)?,
            scopes,
            not_before: cx.time("not_before", &raw.not_before)?,
            not_after: cx.time("not_after", &raw.not_after)?,
            reason: cx.check("reason", &raw.reason, validate::check_reason)?,
            ticket: opt("ticket", &raw.ticket)?,
            request: opt("request", &raw.request)?,
        };
        let mut signatures = Vec::with_capacity(raw.signature.len());
        for (i, s) in raw.signature.iter().enumerate() {
            let s = s.get_ref();
            let key_id: KeyId =
                s.key_id
                    .get_ref()
                    .parse()
                    .map_err(|e: crate::signing::keys::KeyError| {
                        cx.err(format!("signature[{i}].key_id"), s.key_id.span())(e.to_string())
                    })?;
            let signature = crate::signing::keys::decode_fixed::<64>(s.signature.get_ref())
                .map_err(cx.err(format!("signature[{i}].signature"), s.signature.span()))?;
            signatures.push(Signature {
                key_id,
                operator: cx.check(
                    format!("signature[{i}].operator"),
                    &s.operator,
                    validate::check_name,
                )?,
                role: *s.role.get_ref(),
                signed_at: cx.time(format!("signature[{i}].signed_at"), &s.signed_at)?,
                signature,
            });
        }
        Ok(Lease { body, signatures })
    }

    /// Reads and parses a lease file.
    pub fn read(path: &Path) -> Result<Lease, LeaseError> {
        let text = crate::host::files::read_text(path, crate::host::files::LEASE)?;
        Lease::parse(&text, &path.display().to_string())
    }

    /// The lease file's text.
    pub fn to_toml(&self) -> String {
        let b = &self.body;
        let mut out = String::from(
            "# governor lease. The signatures below cover every field of it (not the\n\
             # formatting): change a field and the lease is refused. Check it with\n\
             # `governor lease show FILE`.\n",
        );
        let mut kv = |k: &str, v: String| {
            out.push_str(k);
            out.push_str(" = ");
            out.push_str(&v);
            out.push('\n');
        };
        kv("version", b.version.to_string());
        kv("id", quote(&b.id));
        kv("agent", quote(&b.agent));
        kv("host", quote(&b.host));
        kv("not_before", time::rfc3339(b.not_before));
        kv("not_after", time::rfc3339(b.not_after));
        kv("reason", quote(&b.reason));
        if let Some(t) = &b.ticket {
            kv("ticket", quote(t));
        }
        if let Some(r) = &b.request {
            kv("request", quote(r));
        }
        for s in &b.scopes {
            out.push_str("\n[[scope]]\n");
            out.push_str(&format!(
                "class = {}\ntarget = {}\n",
                quote(&s.class),
                quote(&s.target)
            ));
            if let Some(p) = s.pin {
                out.push_str(&format!(
                    "pin = {{ dev = {}, ino = {} }}\n",
                    number(p.dev),
                    number(p.ino)
                ));
            }
        }
        for s in &self.signatures {
            out.push_str(&format!(
                "\n[[signature]]\nkey_id = {}\noperator = {}\nrole = {}\nsigned_at = {}\n\
                 signature = {}\n",
                quote(&s.key_id.to_string()),
                quote(&s.operator),
                quote(s.role.as_str()),
                time::rfc3339(s.signed_at),
                quote(&crate::signing::keys::encode(&s.signature)),
            ));
        }
        out
    }

    /// Writes the lease to `path` atomically ([`write::replace`]: mode 0644, the file and
    /// its directory synced).
    pub fn write(&self, path: &Path) -> Result<(), LeaseError> {
        write::replace(path, self.to_toml().as_bytes(), 0o644).map_err(|source| LeaseError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A u64 as TOML: an integer when it fits TOML's i64, else a decimal string.
fn number(n: u64) -> String {
    if i64::try_from(n).is_ok() {
        n.to_string()
    } else {
        quote(&n.to_string())
    }
}
