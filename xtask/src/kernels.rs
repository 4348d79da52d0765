//! Debian cloud kernels used as VM guests, cached outside the work tree
//! (`$GOVERNOR_CACHE_DIR`, else `$HOME/.cache/governor/kernels`) so every
//! clone on the machine shares them. A series already extracted in the cache
//! is used without network; else a cached `.deb` is extracted; else the newest
//! matching package is fetched with `apt-get download`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cmd;

/// File written into an extracted kernel once `dpkg -x` completed.
const COMPLETE_MARKER: &str = ".governor-extracted";

/// A supported guest kernel series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Series {
    /// Debian 12 backports kernel 6.12 (virtiofs built in).
    #[default]
    #[value(name = "6.12")]
    V6_12,
    /// Debian 12 kernel 6.1 (virtiofs as modules).
    #[value(name = "6.1")]
    V6_1,
}

impl Series {
    pub const ALL: [Series; 2] = [Series::V6_12, Series::V6_1];

    pub fn as_str(self) -> &'static str {
        match self {
            Series::V6_12 => "6.12",
            Series::V6_1 => "6.1",
        }
    }

    /// Package-name regex given to `apt-cache search --names-only`.
    fn apt_regex(self) -> &'static str {
        match self {
            Series::V6_12 => r"^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$",
            Series::V6_1 => r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$",
        }
    }

    /// Same as [`Self::apt_regex`]: `prefix`, one or more digits, `suffix`.
    pub fn matches_package(self, name: &str) -> bool {
        let (prefix, suffix) = match self {
            Series::V6_12 => ("linux-image-6.12.", "+deb12-cloud-amd64-unsigned"),
            Series::V6_1 => ("linux-image-6.1.0-", "-cloud-amd64-unsigned"),
        };
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .is_some_and(|mid| !mid.is_empty() && mid.bytes().all(|b| b.is_ascii_digit()))
    }
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An extracted kernel package.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub series: Series,
    /// Debian package name, e.g. `linux-image-6.1.0-56-cloud-amd64-unsigned`.
    pub package: String,
    /// `uname -r` of the guest, e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// Where the package was extracted (`<cache>/<package>`).
    pub root: PathBuf,
    pub vmlinuz: PathBuf,
    /// `<root>/lib/modules/<release>`.
    pub modules_dir: PathBuf,
}

impl Kernel {
    /// `<root>/boot/config-<release>`.
    pub fn config_path(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("config-{}", self.release))
    }
}

/// The kernel (and KVM-probe) cache directory, created if missing.
pub fn cache_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("GOVERNOR_CACHE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let home =
                std::env::var_os("HOME").context("neither GOVERNOR_CACHE_DIR nor HOME set")?;
            Path::new(&home).join(".cache/governor/kernels")
        }
    };
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Numeric fields of a name, for version ordering (6.12.117 > 6.12.99).
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(u64::MAX))
        .collect()
}

fn newest<T>(items: impl IntoIterator<Item = (String, T)>) -> Option<(String, T)> {
    items.into_iter().max_by_key(|(name, _)| version_key(name))
}

/// Returns the newest kernel of `series`, fetching and extracting as needed.
pub fn ensure(series: Series) -> Result<Kernel> {
    let cache = cache_dir()?;
    let entries: Vec<(String, PathBuf)> = fs::read_dir(&cache)
        .with_context(|| format!("cannot list {}", cache.display()))?
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();

    let extracted = entries
        .iter()
        .filter(|(n, p)| series.matches_package(n) && p.join(COMPLETE_MARKER).is_file())
        .map(|(n, p)| (n.clone(), p.clone()));
    if let Some((package, root)) = newest(extracted) {
        return load(series, package, root);
    }

    let debs = entries.iter().filter_map(|(n, p)| {
        let package = n.strip_suffix(".deb")?.split('_').next()?;
        series
            .matches_package(package)
            .then(|| (package.to_string(), p.clone()))
    });
    let (package, deb) = match newest(debs) {
        Some(found) => found,
        None => {
            let package = find_package(series)?;
            let deb = download(&cache, &package)?;
            (package, deb)
        }
    };
    let root = extract(&cache, &package, &deb)?;
    load(series, package, root)
}

fn apt_search(series: Series) -> Result<Vec<String>> {
    let out = cmd::output(Command::new("apt-cache").args([
        "search",
        "--names-only",
        series.apt_regex(),
    ]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| series.matches_package(n))
        .map(str::to_string)
        .collect())
}

fn find_package(series: Series) -> Result<String> {
    let mut found = apt_search(series)?;
    if found.is_empty() {
        eprintln!("kernels: no {series} kernel in the apt lists; running apt-get update");
        cmd::run(Command::new("apt-get").arg("update"))
            .context("apt-get update failed (fix: run `apt-get update` as root)")?;
        found = apt_search(series)?;
    }
    match newest(found.into_iter().map(|n| (n, ()))) {
        Some((name, ())) => Ok(name),
        None => bail!(
            "no package matching {} found by `apt-cache search`; is Debian 12 (bookworm) \
             with backports in the apt sources?",
            series.apt_regex()
        ),
    }
}

fn download(cache: &Path, package: &str) -> Result<PathBuf> {
    eprintln!("kernels: downloading {package} into {}", cache.display());
    cmd::run(
        Command::new("apt-get")
            .args(["download", package])
            .current_dir(cache),
    )
    .with_context(|| format!("cannot download {package} (fix: run `apt-get update`)"))?;
    let prefix = format!("{package}_");
    let debs = fs::read_dir(cache)?.filter_map(|e| e.ok()).filter_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        (name.starts_with(&prefix) && name.ends_with(".deb")).then(|| (name, e.path()))
    });
    match newest(debs) {
        Some((_, path)) => Ok(path),
        None => bail!(
            "apt-get download {package} left no .deb in {}",
            cache.display()
        ),
    }
}

/// `dpkg -x` into a scratch dir, mark it complete, then rename into place, so
/// an interrupted extraction is never mistaken for a complete one.
fn extract(cache: &Path, package: &str, deb: &Path) -> Result<PathBuf> {
    let dest = cache.join(package);
    let scratch = cache.join(format!(".{package}.partial-{}", std::process::id()));
    eprintln!(
        "kernels: extracting {} into {}",
        deb.display(),
        dest.display()
    );
    // Also drop scratch dirs of interrupted extractions (process gone).
    let stale = format!(".{package}.partial-");
    for e in fs::read_dir(cache)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.strip_prefix(&stale).unwrap_or_default();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    cmd::run(Command::new("dpkg").arg("-x").arg(deb).arg(&scratch))?;
    fs::write(scratch.join(COMPLETE_MARKER), package)?;
    if dest.exists() {
        fs::remove_dir_all(&dest)
            .with_context(|| format!("cannot remove incomplete {}", dest.display()))?;
    }
    fs::rename(&scratch, &dest)
        .with_context(|| format!("cannot move {} into place", scratch.display()))?;
    Ok(dest)
}

fn load(series: Series, package: String, root: PathBuf) -> Result<Kernel> {
    let modules = root.join("lib/modules");
    let releases: Vec<String> = fs::read_dir(&modules)
        .with_context(|| format!("{} has no lib/modules", root.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let [release] = releases.as_slice() else {
        bail!(
            "expected one release in {}, found {releases:?}",
            modules.display()
        );
    };
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.is_file() {
        bail!(
            "{} missing; delete {} to re-extract",
            vmlinuz.display(),
            root.display()
        );
    }
    Ok(Kernel {
        series,
        package,
        release: release.clone(),
        modules_dir: modules.join(release),
        vmlinuz,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_series_packages() {
        let s12 = Series::V6_12;
        assert!(s12.matches_package("linux-image-6.12.117+deb12-cloud-amd64-unsigned"));
        assert!(!s12.matches_package("linux-image-6.12.117+deb12-cloud-amd64"));
        assert!(!s12.matches_package("linux-image-6.12.+deb12-cloud-amd64-unsigned"));
        let s1 = Series::V6_1;
        assert!(s1.matches_package("linux-image-6.1.0-56-cloud-amd64-unsigned"));
        assert!(!s1.matches_package("linux-image-6.1.0-56-amd64-unsigned"));
    }

    #[test]
    fn newest_is_numeric() {
        let names = [
            "linux-image-6.12.99+deb12-x",
            "linux-image-6.12.117+deb12-x",
        ];
        let (best, ()) = newest(names.iter().map(|n| (n.to_string(), ()))).unwrap();
        assert_eq!(best, "linux-image-6.12.117+deb12-x");
    }
}
