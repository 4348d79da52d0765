//! The timed operations: tight loops of raw system calls, each iteration checked, so the
//! loop measures the kernel path (and governor's programs on it), not library overhead.

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// Bytes read or written per iteration.
const IO_BYTES: usize = 64;

/// One benchmarked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `open(O_CREAT|O_EXCL|O_WRONLY)`, `close`, `unlink` of a fresh file.
    CreateUnlink,
    /// `open(O_RDONLY)`, `read` 64 bytes, `close`.
    OpenRead,
    /// `open(O_WRONLY)`, `write` 64 bytes at offset 0, `close`.
    OpenWrite,
    /// TCP `socket`, `connect` to a loopback listener, `accept`, both closed (the client with
    /// `SO_LINGER` 0, so no TIME_WAIT piles up).
    Connect,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::CreateUnlink, Op::OpenRead, Op::OpenWrite, Op::Connect];

    pub fn name(self) -> &'static str {
        match self {
            Op::CreateUnlink => "create+unlink",
            Op::OpenRead => "open+read",
            Op::OpenWrite => "open+write",
            Op::Connect => "tcp connect",
        }
    }

    /// The operation named `name` (see [`Op::name`]).
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// What the loops work on: files in an unprotected directory and a loopback listener.
pub struct Fixture {
    create: CString,
    read: CString,
    write: CString,
    listener: i32,
    addr: libc::sockaddr_in,
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).with_context(|| format!("NUL in {}", p.display()))
}

fn check(ret: i64, what: &str) -> Result<i64> {
    if ret < 0 {
        return Err(io::Error::last_os_error()).context(what.to_owned());
    }
    Ok(ret)
}

impl Fixture {
    /// Creates the files the loops use under `work` (the driver does, once, before any
    /// worker opens them).
    pub fn create_files(work: &Path) -> Result<()> {
        std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
        let read = work.join("read.dat");
        let write = work.join("write.dat");
        std::fs::write(&read, [b'r'; 4096])
            .with_context(|| format!("writing {}", read.display()))?;
        std::fs::write(&write, [b'w'; IO_BYTES])
            .with_context(|| format!("writing {}", write.display()))?;
        let create = work.join("created");
        let _ = std::fs::remove_file(&create);
        Ok(())
    }

    /// The loops over the files [`Fixture::create_files`] made in `work`, with a listener of
    /// this process's own on 127.0.0.1 (an ephemeral port).
    pub fn open(work: &Path) -> Result<Fixture> {
        let read = work.join("read.dat");
        let write = work.join("write.dat");
        let create = work.join("created");
        // SAFETY: plain socket calls on values we own; the address struct is fully set.
        let (listener, addr) = unsafe {
            let fd = check(
                libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).into(),
                "socket for the listener",
            )? as i32;
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            check(
                libc::bind(fd, (&raw const addr).cast(), len).into(),
                "bind the listener to 127.0.0.1:0",
            )?;
            check(libc::listen(fd, 128).into(), "listen")?;
            let mut got_len = len;
            check(
                libc::getsockname(fd, (&raw mut addr).cast(), &mut got_len).into(),
                "getsockname of the listener",
            )?;
            (fd, addr)
        };
        Ok(Fixture {
            create: cpath(&create)?,
            read: cpath(&read)?,
            write: cpath(&write)?,
            listener,
            addr,
        })
    }

    /// Runs `op` `n` times; returns the elapsed time.
    pub fn run(&self, op: Op, n: u64) -> Result<Duration> {
        let mut buf = [0u8; IO_BYTES];
        let start = Instant::now();
        for _ in 0..n {
            // SAFETY: raw system calls on NUL-terminated paths and buffers we own; every
            // descriptor opened is closed in the same iteration.
            unsafe {
                match op {
                    Op::CreateUnlink => {
                        let fd = check(
                            libc::open(
                                self.create.as_ptr(),
                                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                                0o600,
                            )
                            .into(),
                            "create",
                        )?;
                        libc::close(fd as i32);
                        check(libc::unlink(self.create.as_ptr()).into(), "unlink")?;
                    }
                    Op::OpenRead => {
                        let fd = check(
                            libc::open(self.read.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC).into(),
                            "open for read",
                        )? as i32;
                        let r = libc::read(fd, buf.as_mut_ptr().cast(), IO_BYTES);
                        libc::close(fd);
                        if r != IO_BYTES as isize {
                            bail!("read returned {r}: {}", io::Error::last_os_error());
                        }
                    }
                    Op::OpenWrite => {
                        let fd = check(
                            libc::open(self.write.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC)
                                .into(),
                            "open for write",
                        )? as i32;
                        let w = libc::write(fd, buf.as_ptr().cast(), IO_BYTES);
                        libc::close(fd);
                        if w != IO_BYTES as isize {
                            bail!("write returned {w}: {}", io::Error::last_os_error());
                        }
                    }
                    Op::Connect => self.connect_once()?,
                }
            }
        }
        Ok(start.elapsed())
    }

    /// One connect/accept/close round trip.
    unsafe fn connect_once(&self) -> Result<()> {
        let s = check(
            libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).into(),
            "socket",
        )? as i32;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        let res = (|| {
            check(
                libc::setsockopt(
                    s,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
                .into(),
                "SO_LINGER",
            )?;
            check(
                libc::connect(
                    s,
                    (&raw const self.addr).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
                .into(),
                "connect to the loopback listener",
            )?;
            let a = check(
                libc::accept4(
                    self.listener,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
                .into(),
                "accept",
            )? as i32;
            libc::close(a);
            Ok(())
        })();
        libc::close(s);
        res
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.listener) };
    }
}

/// What a flood of denied sends did ([`flood_send`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flood {
    pub attempts: u64,
    /// Calls refused with EPERM (what governor's deny returns).
    pub denied: u64,
    /// Calls that failed otherwise, or succeeded.
    pub other: u64,
    pub elapsed: Duration,
}

/// The address the flood sends to (a documentation-free private range the flood policy
/// denies; nothing is listening, and nothing leaves: every send is refused before routing).
pub const FLOOD_ADDR: [u8; 4] = [10, 99, 0, 1];

/// Sends one UDP datagram to [`FLOOD_ADDR`] port 9 `count` times from one unconnected
/// socket, at most `rate` per second (paced every 256 calls: ahead of the schedule, it
/// sleeps until the schedule catches up), and counts how each send ended.
pub fn flood_send(count: u64, rate: u64) -> Result<Flood> {
    // SAFETY: plain socket calls on values we own; the address struct is fully set.
    let fd = unsafe {
        check(
            libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).into(),
            "socket for the flood",
        )? as i32
    };
    // SAFETY: zeroed sockaddr_in is valid; every field the kernel reads is set below.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = 9u16.to_be();
    addr.sin_addr.s_addr = u32::from_be_bytes(FLOOD_ADDR).to_be();
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let mut f = Flood {
        attempts: 0,
        denied: 0,
        other: 0,
        elapsed: Duration::ZERO,
    };
    let start = Instant::now();
    while f.attempts < count {
        let chunk = (count - f.attempts).min(256);
        for _ in 0..chunk {
            // SAFETY: sendto(2) of one byte we own to the address above.
            let ret = unsafe {
                libc::sendto(
                    fd,
                    b"g".as_ptr().cast(),
                    1,
                    0,
                    (&raw const addr).cast(),
                    len,
                )
            };
            if ret < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
                f.denied += 1;
            } else {
                f.other += 1;
            }
        }
        f.attempts += chunk;
        let due = Duration::from_secs_f64(f.attempts as f64 / rate as f64);
        if let Some(ahead) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
    f.elapsed = start.elapsed();
    // SAFETY: closing the socket we opened.
    unsafe { libc::close(fd) };
    Ok(f)
}
