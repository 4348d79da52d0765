//! Identities a lease names: this host's (its machine id), a fresh lease id, and the 64-bit
//! id the kernel records for a lease id in events.

use std::path::Path;

use super::LeaseError;

/// Where this host's identity comes from.
pub const MACHINE_ID: &str = "/etc/machine-id";

/// This host's identity: `/etc/machine-id`, trimmed.
pub fn host_id() -> Result<String, LeaseError> {
    host_id_from(Path::new(MACHINE_ID))
}

/// The host identity in `path` (a machine-id file: 32 lowercase hex digits).
pub fn host_id_from(path: &Path) -> Result<String, LeaseError> {
    let err = |why: String| LeaseError::HostId {
        path: path.to_owned(),
        why,
    };
    let text = crate::host::files::read_text(path, crate::host::files::KERNEL).map_err(|e| {
        err(format!(
            "{e}; run `systemd-machine-id-setup` (or `dbus-uuidgen --ensure=/etc/machine-id`) \
             to create it"
        ))
    })?;
    let id = text.trim();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err(format!(
            "`{id}` is not a machine id (32 hex digits); run `systemd-machine-id-setup`"
        )));
    }
    Ok(id.to_ascii_lowercase())
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A fresh lease id: `l-` then 128 random bits as 26 lowercase RFC 4648 base32 digits
/// (the last digit carries the remaining 3 bits).
pub fn new_lease_id() -> Result<String, LeaseError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| LeaseError::Random(e.to_string()))?;
    Ok(lease_id_of(bytes))
}

fn lease_id_of(bytes: [u8; 16]) -> String {
    let n = u128::from_be_bytes(bytes);
    let mut out = String::from("l-");
    for i in 0..26i32 {
        // Digit i holds bits 127-5i down to 123-5i; the last one holds the low 3 bits,
        // shifted up as base32 pads them.
        let shift = 123 - 5 * i;
        let digit = if shift >= 0 {
            (n >> shift) & 31
        } else {
            (n << -shift) & 31
        };
        out.push(char::from(BASE32[digit as usize]));
    }
    out
}

/// The 64-bit id the kernel records for lease `id` in events: FNV-1a of the id, never 0
/// (0 means "no lease" in an event).
pub fn kernel_id(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_are_base32_of_128_bits() {
        assert_eq!(lease_id_of([0; 16]), format!("l-{}", "a".repeat(26)));
        assert_eq!(lease_id_of([0xff; 16]), format!("l-{}4", "7".repeat(25)));
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(lease_id_of(one), format!("l-{}e", "a".repeat(25)));
        let a = new_lease_id().expect("random");
        let b = new_lease_id().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
    }

    #[test]
    fn machine_id_is_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("governor-hostid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let good = dir.join("good");
        std::fs::write(&good, "0123456789ABCDEF0123456789abcdef\n").expect("write");
        assert_eq!(
            host_id_from(&good).expect("good id"),
            "0123456789abcdef0123456789abcdef"
        );
        let bad = dir.join("bad");
        std::fs::write(&bad, "\n").expect("write");
        assert!(matches!(host_id_from(&bad), Err(LeaseError::HostId { .. })));
        let missing = host_id_from(&dir.join("missing")).expect_err("missing");
        assert!(missing.to_string().contains("systemd-machine-id-setup"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
