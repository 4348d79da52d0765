//! The byte encoding under every signature: a domain tag, then fields in a fixed order,
//! each string or byte string prefixed by its length (u32 big-endian), integers as u64
//! big-endian, options as a 0/1 tag byte. No field can run into the next, so no two
//! different messages encode to the same bytes.

/// Builds one signed message.
pub struct Canon {
    out: Vec<u8>,
}

impl Canon {
    /// A message of the domain `tag` (written raw; every tag ends in NUL).
    pub fn new(tag: &[u8]) -> Self {
        Self { out: tag.to_vec() }
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        // Fields are bounded far below 4 GiB (they come from files the parsers read whole);
        // saturating keeps the encoding total without a panic path.
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(b);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn u64(&mut self, n: u64) -> &mut Self {
        self.out.extend_from_slice(&n.to_be_bytes());
        self
    }

    pub fn u8(&mut self, n: u8) -> &mut Self {
        self.out.push(n);
        self
    }

    /// 0 for `None`; 1 then the value for `Some`.
    pub fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
                self
            }
        }
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::Canon;

    #[test]
    fn layout() {
        let got = Canon::new(b"t\0")
            .str("ab")
            .u64(258)
            .opt(None::<u64>, |c, v| {
                c.u64(v);
            })
            .opt(Some("c"), |c, v| {
                c.str(v);
            })
            .finish();
        let want: &[u8] = &[
            b't', 0, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0, 0, 0, 1, 2, 0, 1, 0, 0, 0, 1, b'c',
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn boundaries_are_unambiguous() {
        let a = Canon::new(b"t\0").str("ab").str("c").finish();
        let b = Canon::new(b"t\0").str("a").str("bc").finish();
        assert_ne!(a, b);
    }
}
