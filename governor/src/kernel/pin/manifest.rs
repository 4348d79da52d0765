//! The manifest: one line of text naming the generation a pin directory holds (format, build,
//! version, pinning daemon, link counts, policy version), kept as a symlink's target.

use super::{FORMAT, MAGIC};

/// What a generation's manifest says about it. Text form, one line:
/// `governor-pins format=1 generation=7 build=<hex> version=0.1.0 pid=123 lsm=L net=N
/// policy=<version>`, where L and N count the LSM and network links this generation attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub generation: u64,
    /// Hash of the embedded eBPF object: equal builds have equal programs and map layouts.
    pub build: String,
    pub version: String,
    /// The daemon that pinned it.
    pub pid: u32,
    /// Pinned BPF-LSM links and network links.
    pub lsm: usize,
    pub net: usize,
    /// Version of the policy its programs enforce (what its events' agent and rule ids
    /// refer to); absent in manifests of governors before it.
    pub policy: Option<String>,
}

impl Manifest {
    pub fn text(&self) -> String {
        let policy = self
            .policy
            .as_ref()
            .map_or_else(String::new, |p| format!(" policy={p}"));
        format!(
            "{MAGIC} format={} generation={} build={} version={} pid={} lsm={} net={}{policy}",
            self.format, self.generation, self.build, self.version, self.pid, self.lsm, self.net
        )
    }

    /// Parses the text form; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut words = text.split_whitespace();
        if words.next() != Some(MAGIC) {
            return Err(format!("not a governor manifest: {text:?}"));
        }
        let mut m = Manifest {
            format: 0,
            generation: 0,
            build: String::new(),
            version: String::new(),
            pid: 0,
            lsm: 0,
            net: 0,
            policy: None,
        };
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("manifest word {word:?} is not key=value"))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("manifest {key}={v:?}"))
            };
            match key {
                "format" => m.format = num(value)? as u32,
                "generation" => m.generation = num(value)?,
                "build" => m.build = value.to_owned(),
                "version" => m.version = value.to_owned(),
                "pid" => m.pid = num(value)? as u32,
                "lsm" => m.lsm = num(value)? as usize,
                "net" => m.net = num(value)? as usize,
                "policy" => m.policy = Some(value.to_owned()),
                // A later format may add words; `format` decides whether we understand it.
                _ => {}
            }
        }
        if m.format != FORMAT {
            return Err(format!(
                "manifest format {} (this governor writes format {FORMAT})",
                m.format
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT,
            generation: 7,
            build: "00ff00ff00ff00ff".to_owned(),
            version: "0.1.0".to_owned(),
            pid: 4242,
            lsm: 36,
            net: 12,
            policy: Some("56e2aa".to_owned()),
        }
    }

    #[test]
    fn manifest_round_trips() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.text()), Ok(m));
    }

    #[test]
    fn manifest_rejects_foreign_and_other_formats() {
        assert!(Manifest::parse("something else").is_err());
        assert!(Manifest::parse("").is_err());
        let other = sample().text().replace("format=1", "format=2");
        let err = Manifest::parse(&other).unwrap_err();
        assert!(err.contains("format 2"), "{err}");
        assert!(Manifest::parse("governor-pins format=1 generation=x").is_err());
        assert!(Manifest::parse("governor-pins format=1 oops").is_err());
        // Unknown words of the same format are ignored.
        let extra = format!("{} future=1", sample().text());
        assert_eq!(Manifest::parse(&extra), Ok(sample()));
    }
}
