//! Finds the kernel modules a guest needs (and their dependencies) in an
//! extracted kernel package, without `modinfo` or `modules.dep`: dependencies
//! come from the `depends=` entry of each module's `.modinfo` strings, and
//! built-in drivers are recognised via `modules.builtin` or the kernel config.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::kernels::Kernel;

/// A loadable module, decompressed.
pub struct Module {
    /// Normalised name (`-` replaced by `_`).
    pub name: String,
    pub data: Vec<u8>,
}

/// Config symbols of modules whose name differs from what `modules.builtin`
/// would list; only consulted when `modules.builtin` is absent.
const CONFIG_SYMBOLS: &[(&str, &str)] = &[
    ("virtio", "CONFIG_VIRTIO"),
    ("virtio_ring", "CONFIG_VIRTIO"),
    ("virtio_pci", "CONFIG_VIRTIO_PCI"),
    ("virtio_pci_modern_dev", "CONFIG_VIRTIO_PCI_LIB"),
    ("virtio_pci_legacy_dev", "CONFIG_VIRTIO_PCI_LIB_LEGACY"),
    ("fuse", "CONFIG_FUSE_FS"),
    ("virtiofs", "CONFIG_VIRTIO_FS"),
];

fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// Modules to `insmod`, dependencies first, for `wanted` (built-ins skipped).
pub fn resolve(kernel: &Kernel, wanted: &[&str]) -> Result<Vec<Module>> {
    let mut r = Resolver {
        builtin: builtin_modules(kernel)?,
        files: index_module_files(&kernel.modules_dir.join("kernel"))?,
        done: HashSet::new(),
        active: HashSet::new(),
        order: Vec::new(),
    };
    for name in wanted {
        r.visit(&normalise(name))?;
    }
    Ok(r.order)
}

struct Resolver {
    builtin: HashSet<String>,
    files: HashMap<String, PathBuf>,
    done: HashSet<String>,
    active: HashSet<String>,
    order: Vec<Module>,
}

impl Resolver {
    fn visit(&mut self, name: &str) -> Result<()> {
        if self.builtin.contains(name) || self.done.contains(name) {
            return Ok(());
        }
        if !self.active.insert(name.to_string()) {
            bail!("module dependency cycle through {name}");
        }
        let Some(path) = self.files.get(name).cloned() else {
            bail!("kernel module {name} is neither built in nor present as {name}.ko[.xz]");
        };
        let data = read_module(&path)?;
        for dep in depends(&data) {
            self.visit(&normalise(&dep))
                .with_context(|| format!("dependency of {name}"))?;
        }
        self.active.remove(name);
        self.done.insert(name.to_string());
        self.order.push(Module {
            name: name.to_string(),
            data,
        });
        Ok(())
    }
}

/// Names of built-in modules, from `modules.builtin` or else the config.
fn builtin_modules(kernel: &Kernel) -> Result<HashSet<String>> {
    let list = kernel.modules_dir.join("modules.builtin");
    if let Ok(text) = fs::read_to_string(&list) {
        return Ok(text
            .lines()
            .filter_map(|l| l.trim().rsplit('/').next())
            .filter_map(|f| f.strip_suffix(".ko"))
            .map(normalise)
            .collect());
    }
    let config_path = kernel.config_path();
    let config = fs::read_to_string(&config_path).with_context(|| {
        format!(
            "neither {} nor {} readable",
            list.display(),
            config_path.display()
        )
    })?;
    let enabled: HashSet<&str> = config
        .lines()
        .filter_map(|l| l.strip_suffix("=y"))
        .collect();
    Ok(CONFIG_SYMBOLS
        .iter()
        .filter(|(_, sym)| enabled.contains(sym))
        .map(|(m, _)| m.to_string())
        .collect())
}

/// Maps normalised module name to its file, for `*.ko` and `*.ko.xz`.
fn index_module_files(dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut map = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
                continue;
            }
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file
                .strip_suffix(".ko")
                .or_else(|| file.strip_suffix(".ko.xz"))
            {
                map.insert(normalise(stem), path);
            }
        }
    }
    Ok(map)
}

fn read_module(path: &Path) -> Result<Vec<u8>> {
    if path.extension().is_some_and(|e| e == "xz") {
        let out = Command::new("xz")
            .arg("-dc")
            .arg(path)
            .output()
            .context("cannot run xz (apt-get install xz-utils)")?;
        if !out.status.success() {
            bail!(
                "xz -dc {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out.stdout)
    } else {
        fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// The comma-separated `depends=` entry of a module's NUL-separated modinfo.
fn depends(data: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = data.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let value = &data[start + KEY.len()..];
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::depends;

    #[test]
    fn parses_depends() {
        let data = b"junk\0license=GPL\0depends=virtio,virtio_ring\0name=x\0";
        assert_eq!(depends(data), ["virtio", "virtio_ring"]);
        assert!(depends(b"\0depends=\0").is_empty());
        assert!(depends(b"nothing").is_empty());
    }
}
