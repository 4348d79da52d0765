//! Unix-socket hooks: connecting to a unix socket bound to a path (stream and seqpacket), and
//! sending to or connecting a datagram socket to one, is the class UnixConnect. It is decided
//! like a file class, on the inode the listening socket is bound to: the walk goes from that
//! socket file up through its directories and mounts, so a protected directory (governor's
//! runtime directory with its admin socket, or any `[[protect]]` path listing
//! `unix-connect`) covers every socket below it, whatever name or path the agent used.
//!
//! Abstract sockets have no inode, so no path rule can name them; any process in the network
//! namespace can reach one by its name (a root daemon's control socket among them). An agent
//! may reach an abstract socket only when that socket was created inside the agent's cgroup
//! subtree: its `sk_cgrp_data` cgroup (the creating task's cgroup v2, fixed at `socket(2)`)
//! must be registered for the same agent. Agents whose policy sets
//! `allow_outside_abstract_unix` are not checked. Unbound peers (socketpair ends, sockets
//! never bound) have no name to be reached by and are not checked.
//!
//! A connection lasts beyond its connect, and a descriptor can be inherited or handed over
//! (`SCM_RIGHTS`, pidfd_getfd(2)) by a cooperating non-agent: an agent holding a connected
//! unix socket is decided again at every send (`socket_sendmsg`), as if it connected now, so
//! a connection to governor's admin socket is useless to it however it got it. Descriptors an
//! agent receives are decided when they arrive (`file_receive`): a socket as a connect to its
//! peer, any other file as an open for reading (governor's own files are unreadable to
//! agents); locks on a file (`file_lock`, flock(2) and fcntl(2)) as reading it, so that no
//! agent can hold a lock in governor's directories that would stall the daemon.
//!
//! Entry points are thin; each quotes the kernel prototype (identical on 6.1 and 6.12). The
//! last argument of every LSM program is the previous program's verdict, which we return when
//! it is already a refusal.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::{
    detail::UNIX_ABSTRACT,
    maps::{AGENT_FLAG_ALLOW_OUTSIDE_ABSTRACT_UNIX, RULE_BUILTIN},
    Class, KernelOffsets,
};

use crate::{
    agent::{self, prior, Agent, Refusal},
    emit::Name,
    file, maps, read_task,
    read_vfs::{self, ptr_at, read_into, Loc},
    walk::{self, Leased},
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

// int security_socket_sendmsg(struct socket *sock, struct msghdr *msg, int size);
// (every send on every socket: send(2), sendmsg(2), write(2) on a socket, ...)
#[lsm(hook = "socket_sendmsg")]
pub fn socket_sendmsg(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| sending(ctx.arg(0)))
}

// int security_file_receive(struct file *file);
// (a descriptor arriving over SCM_RIGHTS, or taken with pidfd_getfd(2))
#[lsm(hook = "file_receive")]
pub fn file_receive(ctx: LsmContext) -> i32 {
    prior(&ctx, 1).unwrap_or_else(|| received(ctx.arg(0)))
}

// int security_file_lock(struct file *file, unsigned int cmd);
#[lsm(hook = "file_lock")]
pub fn file_lock(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| file::at_file(ctx.arg(0), Class::Read, Leased::Record, 0))
}

/// `AF_UNIX`.
const AF_UNIX: u16 = 1;
/// `S_IFMT`, `S_IFSOCK`.
const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;

/// A send on `sock` (a `struct socket *`) by the current task: on a connected unix socket,
/// decided as connecting to its peer now. Other sockets are not this module's business (the
/// network programs decide unconnected sends).
#[inline(always)]
fn sending(sock: *const u8) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    connected(agent, off, ptr_at(sock, off.socket_sk))
}

/// The unix socket `sk` (a `struct sock *`) used by `agent`: if it is connected, decided as
/// a connect to its peer ([`to_peer`]); 0 for other families and unconnected sockets.
#[inline(always)]
fn connected(agent: &Agent, off: &KernelOffsets, sk: *const u8) -> i32 {
    let mut family: u16 = 0;
    if sk.is_null() || !read_into(sk, off.sock_sk_family, &mut family) {
        return walk::unresolved(agent, Class::UnixConnect, Name::None);
    }
    if family != AF_UNIX {
        return 0;
    }
    let peer = ptr_at(sk, off.unix_sock_peer);
    if peer.is_null() {
        return 0;
    }
    to_peer(agent, off, peer)
}

/// A descriptor `file` arriving in an agent: a socket is decided as using it (its peer), any
/// other file as opening it for reading.
#[inline(always)]
fn received(file: *const u8) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let inode = read_vfs::file_inode(off, file);
    let mut mode: u16 = 0;
    if !read_into(inode, off.inode_i_mode, &mut mode) {
        return walk::unresolved(agent, Class::Read, Name::File(file));
    }
    if mode & S_IFMT == S_IFSOCK {
        let sock = ptr_at(file, off.file_private_data);
        return connected(agent, off, ptr_at(sock, off.socket_sk));
    }
    match read_vfs::file_loc(off, file) {
        Some(loc) => walk::decide(agent, off, loc, Class::Read),
        None => walk::unresolved(agent, Class::Read, Name::None),
    }
}

/// How a hook names the peer socket.
enum SockRef {
    /// A `struct sock *` (a `struct unix_sock *`).
    Sock(*const u8),
    /// A `struct socket *`, whose `sk` is the `struct unix_sock *`.
    Socket(*const u8),
}

/// An agent reaching the unix socket `peer`: refused if the file it is bound to lies in a
/// protected tree whose rule denies UnixConnect, if it is an abstract socket from outside the
/// agent ([`abstract_peer`]), or (fail closed) if it cannot be read.
#[inline(always)]
fn to_unix_sock(peer: SockRef) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    if off.valid == 0 {
        return walk::unresolved(agent, Class::UnixConnect, Name::None);
    }
    let sk = match peer {
        SockRef::Sock(sk) => sk,
        SockRef::Socket(sock) => ptr_at(sock, off.socket_sk),
    };
    to_peer(agent, off, sk)
}

/// `agent` reaching the unix socket `sk` (a `struct unix_sock *`): its file decides, or, for
/// an abstract socket, where it was created ([`abstract_peer`]).
#[inline(always)]
fn to_peer(agent: &Agent, off: &KernelOffsets, sk: *const u8) -> i32 {
    if sk.is_null() {
        return walk::unresolved(agent, Class::UnixConnect, Name::None);
    }
    let Some(Loc { dentry, mnt }) =
        read_vfs::path_loc(off, sk.wrapping_add(off.unix_sock_path as usize))
    else {
        return walk::unresolved(agent, Class::UnixConnect, Name::None);
    };
    if dentry.is_null() {
        // No file: an abstract socket, or an unbound one (no name: nothing to check).
        let mut addr: *const u8 = core::ptr::null();
        if !read_into(sk, off.unix_sock_addr, &mut addr) {
            return walk::unresolved(agent, Class::UnixConnect, Name::None);
        }
        if addr.is_null() {
            return 0;
        }
        return abstract_peer(agent, off, sk);
    }
    walk::decide(agent, off, Loc { dentry, mnt }, Class::UnixConnect)
}

/// An agent reaching the abstract socket `sk`: allowed when the socket was created in a cgroup
/// registered for the same agent, or the agent may reach any; refused otherwise, also when the
/// socket's cgroup cannot be read (fail closed).
#[inline(always)]
fn abstract_peer(agent: &Agent, off: &KernelOffsets, sk: *const u8) -> i32 {
    if agent.info.flags & AGENT_FLAG_ALLOW_OUTSIDE_ABSTRACT_UNIX != 0 {
        return 0;
    }
    let id = read_task::cgroup_id(off, ptr_at(sk, off.sock_sk_cgrp_data_cgroup));
    // SAFETY: the value is copied out immediately.
    if let Some(info) = unsafe { maps::GOV_AGENTS.get(&id) } {
        if id != 0 && info.agent_id == agent.info.agent_id {
            return 0;
        }
    }
    let refusal = Refusal::host(Class::UnixConnect, RULE_BUILTIN, UNIX_ABSTRACT | id);
    agent::refuse_named(agent, refusal, Name::None)
}
