//! Unix-socket hooks: connecting to a unix socket bound to a path (stream and seqpacket), and
//! sending to or connecting a datagram socket to one, is the class UnixConnect. It is decided
//! like a file class, on the inode the listening socket is bound to: the walk goes from that
//! socket file up through its directories and mounts, so a protected directory (governor's
//! runtime directory with its admin socket, or any `[[protect]]` path listing
//! `unix-connect`) covers every socket below it, whatever name or path the agent used.
//! Abstract and unbound sockets have no inode and are not covered.
//!
//! Entry points are thin; each quotes the kernel prototype (identical on 6.1 and 6.12). The
//! last argument of every LSM program is the previous program's verdict, which we return when
//! it is already a refusal.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::Class;

use crate::{
    agent::{self, prior},
    emit::Name,
    file, maps,
    vfs::{self, ptr_at, Loc},
};

// int security_unix_stream_connect(struct sock *sock, struct sock *other, struct sock *newsk);
// (`other` is the listening socket, a `struct unix_sock`, whose `struct sock` comes first)
#[lsm(hook = "unix_stream_connect")]
pub fn unix_stream_connect(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| to_unix_sock(SockRef::Sock(ctx.arg(1))))
}

// int security_unix_may_send(struct socket *sock, struct socket *other);
// (datagram sockets: connect(2), and every send to a peer)
#[lsm(hook = "unix_may_send")]
pub fn unix_may_send(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| to_unix_sock(SockRef::Socket(ctx.arg(1))))
}

/// How a hook names the peer socket.
enum SockRef {
    /// A `struct sock *` (a `struct unix_sock *`).
    Sock(*const u8),
    /// A `struct socket *`, whose `sk` is the `struct unix_sock *`.
    Socket(*const u8),
}

/// An agent reaching the unix socket `peer`: refused if the file it is bound to lies in a
/// protected tree whose rule denies UnixConnect, or (fail closed) if it cannot be read.
#[inline(always)]
fn to_unix_sock(peer: SockRef) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    let off = maps::offsets();
    if off.valid == 0 {
        return file::unresolved(&agent, &off, Class::UnixConnect, Name::None);
    }
    let sk = match peer {
        SockRef::Sock(sk) => sk,
        SockRef::Socket(sock) => ptr_at(sock, off.socket_sk),
    };
    if sk.is_null() {
        return file::unresolved(&agent, &off, Class::UnixConnect, Name::None);
    }
    let Some(Loc { dentry, mnt }) =
        vfs::path_loc(&off, sk.wrapping_add(off.unix_sock_path as usize))
    else {
        return file::unresolved(&agent, &off, Class::UnixConnect, Name::None);
    };
    if dentry.is_null() {
        // An abstract or unbound socket: no file, nothing a path rule can name.
        return 0;
    }
    file::decide(&agent, &off, Loc { dentry, mnt }, Class::UnixConnect)
}
