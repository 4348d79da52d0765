//! Keeping the daemon out of the OOM killer's reach: an agent that exhausts memory must not
//! get governor killed in its place. The daemon sets its own `oom_score_adj` to the minimum
//! at start; agents cannot raise it again (writes to `/proc/PID` files of tasks outside an
//! agent are refused in the kernel, class ptrace).

use std::path::Path;

/// `oom_score_adj` value that exempts a process from the OOM killer.
pub const OOM_SCORE_ADJ_MIN: i32 = -1000;

/// The file the daemon writes.
const OWN_OOM_SCORE_ADJ: &str = "/proc/self/oom_score_adj";

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write {OOM_SCORE_ADJ_MIN} to {path} (lowering it needs CAP_SYS_RESOURCE): {source}"
)]
pub struct OomError {
    path: &'static str,
    #[source]
    source: std::io::Error,
}

/// Sets the calling process's `oom_score_adj` to [`OOM_SCORE_ADJ_MIN`].
pub fn exempt_self() -> Result<(), OomError> {
    write(Path::new(OWN_OOM_SCORE_ADJ)).map_err(|source| OomError {
        path: OWN_OOM_SCORE_ADJ,
        source,
    })
}

fn write(path: &Path) -> std::io::Result<()> {
    std::fs::write(path, OOM_SCORE_ADJ_MIN.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_minimum() {
        let dir = std::env::temp_dir().join(format!("governor-oom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("oom_score_adj");
        write(&file).expect("write");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "-1000");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
