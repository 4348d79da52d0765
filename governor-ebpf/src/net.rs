//! Network decisions: connect, bind and unconnected sends to addresses and ports the policy
//! lists, for IPv4, IPv6 and IPv4-mapped IPv6.
//!
//! These are cgroup sock_addr programs, not BPF-LSM: they load on kernels without BPF-LSM too.
//! Userspace attaches them to the agent cgroups themselves (`BPF_F_ALLOW_MULTI`), so a task
//! outside every agent subtree never runs them at all. The kernel runs them for the cgroup the
//! *socket* was created in, which for an agent's own sockets is the agent's cgroup.
//!
//! Return convention of sock_addr programs: 1 allows the operation, 0 refuses it (EPERM).
//!
//! The most specific rule that covers the address and port and decides a checked class (for
//! anyone) decides, with the same verdicts as files (`crate::lease`): `deny` refuses, `lease`
//! allows only while `GOV_LEASES` holds an unexpired entry for (agent, class, that rule), an
//! agent's own `allow` lets it through. An operation checked as several classes (a UDP
//! connect is a connect and a send) passes only if every class the rule decides does; one
//! event names the first class refused, or the leased class and its lease id. Both maps are
//! plain hash maps, so this works the same on kernels without BPF-LSM.
//!
//! TCP fast open (`sendto(MSG_FASTOPEN)` on an unconnected TCP socket) reaches the connect
//! programs: `tcp_sendmsg_fastopen()` calls `__inet_stream_connect()`, which runs the
//! protocol's `pre_connect`, i.e. `BPF_CGROUP_RUN_PROG_INET{4,6}_CONNECT`. A fast open is told
//! apart from a plain connect by `tcp_sock.fastopen_req`, which is set only while one is in
//! progress; it is checked as connect *and* send.

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, generated::bpf_skc_to_tcp_sock},
    macros::cgroup_sock_addr,
    maps::lpm_trie::Key,
    programs::SockAddrContext,
};
use governor_common::{
    net::{
        checked_classes, lease_object, net_detail, v4_mapped, Ip4, Ip6, NetOp, NetRules, AF_INET,
        AF_INET6, RULE_NET_FLAG, SOCK_STREAM,
    },
    Class, Decision, ProtectedRule, Target,
};

use crate::{
    agent::{self, Refusal},
    emit::{self, Name},
    lease::{self, Verdict},
    maps,
};

const ALLOW: i32 = 1;
const REFUSE: i32 = 0;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    decide(&ctx, NetOp::Connect, false)
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    decide(&ctx, NetOp::Connect, true)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    decide(&ctx, NetOp::Send, false)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    decide(&ctx, NetOp::Send, true)
}

#[cgroup_sock_addr(bind4)]
pub fn bind4(ctx: SockAddrContext) -> i32 {
    decide(&ctx, NetOp::Bind, false)
}

#[cgroup_sock_addr(bind6)]
pub fn bind6(ctx: SockAddrContext) -> i32 {
    decide(&ctx, NetOp::Bind, true)
}

/// Decides one operation; `v6` says which address field the hook fills.
#[inline(always)]
fn decide(ctx: &SockAddrContext, op: NetOp, v6: bool) -> i32 {
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the program's context; the verifier checks each field access.
    let (user_port, sock_type, protocol) =
        unsafe { ((*sa).user_port, (*sa).type_, (*sa).protocol) };
    // user_port holds the port in network byte order in its low 16 bits.
    let port = u16::from_be(user_port as u16);
    let mut target = Target {
        port,
        detail: net_detail(sock_type, protocol),
        ..Target::default()
    };
    let rules = if v6 {
        // SAFETY: 4-byte context reads, as the verifier allows for user_ip6.
        let words = unsafe {
            [
                (*sa).user_ip6[0],
                (*sa).user_ip6[1],
                (*sa).user_ip6[2],
                (*sa).user_ip6[3],
            ]
        };
        let mut ip: Ip6 = [0; 16];
        let mut i = 0;
        while i < 4 {
            // Each word is in network byte order in memory; keep its bytes as they are.
            let b = words[i].to_ne_bytes();
            ip[4 * i] = b[0];
            ip[4 * i + 1] = b[1];
            ip[4 * i + 2] = b[2];
            ip[4 * i + 3] = b[3];
            i += 1;
        }
        target.addr = ip;
        target.family = AF_INET6;
        match v4_mapped(&ip) {
            Some(ip4) => lookup4(ip4),
            None => lookup6(ip),
        }
    } else {
        // SAFETY: 4-byte context read.
        let ip4: Ip4 = unsafe { (*sa).user_ip4 }.to_ne_bytes();
        target.addr[0] = ip4[0];
        target.addr[1] = ip4[1];
        target.addr[2] = ip4[2];
        target.addr[3] = ip4[3];
        target.family = AF_INET;
        lookup4(ip4)
    };
    let Some(rules) = rules else {
        return ALLOW;
    };
    let fast_open = op == NetOp::Connect && sock_type == SOCK_STREAM && fast_open(ctx);
    let checked = checked_classes(op, sock_type, fast_open);
    let Some(hit) = rules.first_match(port, checked) else {
        return ALLOW;
    };
    let agent = agent::current_or_unknown();
    let decided = hit.decided() & checked;
    let masks = u64::from(hit.deny_mask) | u64::from(hit.lease_mask) << 32;
    let mut refused: Option<Class> = None;
    let mut leased: Option<(Class, u64)> = None;
    // Reported in this order: connect before send before bind.
    for class in [Class::Connect, Class::Send, Class::Bind] {
        if decided & class.bit() == 0 {
            continue;
        }
        match outcome(agent.info.agent_id, class as u32, hit.rule_id, masks) {
            PASS => {}
            REFUSED => {
                refused = Some(class);
                break;
            }
            lease_id => {
                if leased.is_none() {
                    leased = Some((class, lease_id));
                }
            }
        }
    }
    let (class, lease_id) = match (refused, leased) {
        (Some(class), _) => (class, 0),
        (None, Some(lease)) => lease,
        (None, None) => return ALLOW,
    };
    let refusal = Refusal::net(class, hit.rule_id, target);
    let decision = agent::settle(&agent, refusal, lease_id, Name::None);
    emit::flush();
    match decision {
        Decision::Deny => REFUSE,
        Decision::ObserveDeny | Decision::LeaseAllow | Decision::Allow => ALLOW,
    }
}

/// [`outcome`]: allowed (the agent's own decision, or nothing said about the class for it).
const PASS: u64 = 0;
/// [`outcome`]: denied, or a lease is required and none is held (or it expired).
const REFUSED: u64 = u64::MAX;

/// How class `class` turns out for `agent_id` under the network rule `rule_id`, whose default
/// masks are `masks` (deny in the low half, lease in the high half): [`PASS`], [`REFUSED`], or
/// the id of the lease that allows it. The verdict is [`lease::verdict`] with the agent's own
/// decisions under `rule_id | RULE_NET_FLAG`; for `lease`, the lease is looked up on the rule.
///
/// Not inlined, and given plain scalars: its keys and lookups then live in its own frame, not
/// in the frame above the event emission (6.1 limits the combined stack of a program's call
/// chain to 512 bytes).
#[inline(never)]
fn outcome(agent_id: u32, class: u32, rule_id: u32, masks: u64) -> u64 {
    let rule = ProtectedRule {
        rule_id,
        deny_mask: masks as u32,
        lease_mask: (masks >> 32) as u32,
        agent_mask: 0,
    };
    match lease::verdict(agent_id, rule_id | RULE_NET_FLAG, &rule, 1 << class) {
        Verdict::Allow | Verdict::Silent => PASS,
        Verdict::Deny => REFUSED,
        // No lease in force (0) is refused; a lease id of `REFUSED` would read as refused, and
        // is.
        Verdict::Lease => match lease::lift(agent_id, class, lease_object(rule_id)) {
            PASS => REFUSED,
            id => id,
        },
    }
}

#[inline(always)]
fn lookup4(ip: Ip4) -> Option<&'static NetRules> {
    maps::GOV_NET4.get(Key::new(32, ip))
}

#[inline(always)]
fn lookup6(ip: Ip6) -> Option<&'static NetRules> {
    maps::GOV_NET6.get(Key::new(128, ip))
}

/// Is this stream connect a TCP fast open (`tcp_sock.fastopen_req` set)? When it cannot tell
/// (offsets unresolved, not a TCP socket, unreadable), it answers yes: fail closed.
#[inline(always)]
fn fast_open(ctx: &SockAddrContext) -> bool {
    let off = maps::net_offsets();
    if off.valid == 0 {
        return true;
    }
    // SAFETY: `sk` is a context field the verifier types as a socket pointer.
    let sk = unsafe { (*ctx.sock_addr).__bindgen_anon_1.sk };
    if sk.is_null() {
        return true;
    }
    // SAFETY: helper call on the context's socket; returns null unless it is a TCP socket.
    let tp = unsafe { bpf_skc_to_tcp_sock(sk.cast()) }.cast::<u8>();
    if tp.is_null() {
        return true;
    }
    let field = tp.wrapping_add(off.tcp_sock_fastopen_req as usize);
    // SAFETY: probe read of a kernel pointer field; a bad address only fails the read.
    match unsafe { bpf_probe_read_kernel(field.cast::<u64>()) } {
        Ok(req) => req != 0,
        Err(_) => true,
    }
}
