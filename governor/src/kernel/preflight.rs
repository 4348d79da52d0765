//! What this kernel can do for governor, found before anything is loaded, and the plain
//! refusal when it cannot enforce.

use std::path::Path;

use crate::host::files;

const LSM_FILE: &str = "/sys/kernel/security/lsm";
const LOCKDOWN_FILE: &str = "/sys/kernel/security/lockdown";
const BTF_FILE: &str = "/sys/kernel/btf/vmlinux";

/// Kernel features governor depends on, as found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Capabilities {
    pub kernel_release: String,
    /// Active LSMs in order, from securityfs; `None` if securityfs could not be read.
    pub lsms: Option<Vec<String>>,
    pub lockdown: Option<String>,
    pub btf: bool,
}

impl Capabilities {
    /// Probes the running kernel; mounts securityfs if it is not mounted yet.
    pub fn probe() -> Capabilities {
        if !Path::new(LSM_FILE).exists() {
            let _ = nix::mount::mount(
                Some("securityfs"),
                "/sys/kernel/security",
                Some("securityfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            );
        }
        let lsms = files::read_text(Path::new(LSM_FILE), files::KERNEL)
            .ok()
            .map(|s| {
                s.trim()
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            });
        let lockdown = files::read_text(Path::new(LOCKDOWN_FILE), files::KERNEL)
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .find(|w| w.starts_with('['))
                    .map(|w| w.trim_matches(['[', ']']).to_owned())
            });
        let kernel_release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Capabilities {
            kernel_release,
            lsms,
            lockdown,
            btf: Path::new(BTF_FILE).exists(),
        }
    }

    pub fn bpf_lsm_listed(&self) -> bool {
        self.lsms
            .as_ref()
            .is_some_and(|l| l.iter().any(|x| x == "bpf"))
    }

    /// The `lsm=` kernel parameter that would add `bpf` to what is active now.
    pub fn suggested_lsm_param(&self) -> String {
        let mut list: Vec<String> = self.lsms.clone().unwrap_or_else(|| {
            ["landlock", "lockdown", "yama", "integrity", "apparmor"]
                .map(str::to_owned)
                .to_vec()
        });
        list.retain(|x| x != "capability" && x != "bpf");
        list.push("bpf".to_owned());
        format!("lsm={}", list.join(","))
    }

    /// Refuses, with what is missing, unless the kernel has BTF (every program needs it).
    pub fn require_btf(&self) -> Result<(), PreflightError> {
        if !self.btf {
            return Err(PreflightError::NoBtf {
                release: self.kernel_release.clone(),
            });
        }
        Ok(())
    }

    /// Refuses, with what is missing and how to get it, unless BPF-LSM and BTF are present.
    pub fn require_bpf_lsm(&self) -> Result<(), PreflightError> {
        self.require_btf()?;
        if !self.bpf_lsm_listed() {
            return Err(PreflightError::NoBpfLsm {
                release: self.kernel_release.clone(),
                active: self.lsms.as_ref().map_or_else(
                    || "unknown (securityfs unreadable)".to_owned(),
                    |l| l.join(","),
                ),
                param: self.suggested_lsm_param(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "kernel {release} has no BTF at {BTF_FILE}: governor needs CONFIG_DEBUG_INFO_BTF=y \
         to attach BPF-LSM programs; use a distribution kernel built with it"
    )]
    NoBtf { release: String },
    #[error(
        "BPF-LSM is not active on kernel {release} (active LSMs: {active}), so governor cannot \
         enforce file classes and will not pretend to. Enable it by adding `{param}` to the kernel \
         command line (e.g. GRUB_CMDLINE_LINUX in /etc/default/grub, then `update-grub` and \
         reboot); the kernel must be built with CONFIG_BPF_LSM=y"
    )]
    NoBpfLsm {
        release: String,
        active: String,
        param: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(lsms: Option<&[&str]>) -> Capabilities {
        Capabilities {
            kernel_release: "6.1.0-test".into(),
            lsms: lsms.map(|l| l.iter().map(|s| s.to_string()).collect()),
            lockdown: None,
            btf: true,
        }
    }

    #[test]
    fn suggests_lsm_param_keeping_active_lsms() {
        let c = caps(Some(&[
            "capability",
            "landlock",
            "lockdown",
            "yama",
            "apparmor",
        ]));
        assert_eq!(
            c.suggested_lsm_param(),
            "lsm=landlock,lockdown,yama,apparmor,bpf"
        );
        let err = c.require_bpf_lsm().unwrap_err().to_string();
        assert!(
            err.contains("lsm=landlock,lockdown,yama,apparmor,bpf"),
            "{err}"
        );
        assert!(err.contains("will not pretend"), "{err}");
    }

    #[test]
    fn bpf_listed_passes() {
        assert!(caps(Some(&["lockdown", "bpf"])).require_bpf_lsm().is_ok());
    }

    #[test]
    fn unreadable_securityfs_refuses() {
        let err = caps(None).require_bpf_lsm().unwrap_err().to_string();
        assert!(err.contains("securityfs unreadable"), "{err}");
    }

    #[test]
    fn missing_btf_refuses() {
        let mut c = caps(Some(&["bpf"]));
        c.btf = false;
        assert!(c
            .require_bpf_lsm()
            .unwrap_err()
            .to_string()
            .contains("CONFIG_DEBUG_INFO_BTF"));
    }
}
