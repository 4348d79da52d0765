//! The probe: one python3 program that runs socket operations given on its command line
//! and reports each result, the operations themselves with what each must do, and the
//! checks of what came back.

use std::process::Output;

/// Runs socket operations given as `op,host,port` arguments, each on a fresh socket, and
/// prints `RESULT <index> ok` or `RESULT <index> err <errno> <message>` for each.
pub const PROBE: &str = r#"
import socket, sys
MSG_FASTOPEN = getattr(socket, "MSG_FASTOPEN", 0x20000000)
for i, arg in enumerate(sys.argv[1:]):
    op, host, port = arg.split(",")
    port = int(port)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = None
    try:
        if op == "connect":
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect((host, port))
        elif op == "udp-connect":
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.connect((host, port))
            s.send(b"governor")
        elif op == "sendto":
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.sendto(b"governor", (host, port))
        elif op == "fastopen":
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.sendto(b"governor", MSG_FASTOPEN, (host, port))
        elif op == "bind":
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.bind((host, port))
        else:
            raise SystemExit("unknown op " + op)
        print("RESULT", i, "ok", flush=True)
    except OSError as e:
        print("RESULT", i, "err", e.errno, e.strerror, flush=True)
    finally:
        if s is not None:
            s.close()
"#;

/// What an operation must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Succeed.
    Ok,
    /// Fail with EPERM, logged as a decision of this class with this address and family.
    Denied {
        class: &'static str,
        addr: &'static str,
        family: &'static str,
    },
}

/// One socket operation and its expected outcome.
#[derive(Clone, Debug)]
pub struct Op {
    pub op: &'static str,
    pub host: &'static str,
    pub port: u16,
    pub want: Want,
}

pub fn op(op: &'static str, host: &'static str, port: u16, want: Want) -> Op {
    Op {
        op,
        host,
        port,
        want,
    }
}

pub fn denied(class: &'static str, addr: &'static str, family: &'static str) -> Want {
    Want::Denied {
        class,
        addr,
        family,
    }
}

/// The probe's command-line arguments for `ops`, one `op,host,port` each.
pub fn probe_args(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|o| format!("{},{},{}", o.op, o.host, o.port))
        .collect()
}

/// Each operation's result as the probe reported it: `Ok`, or the errno.
pub fn parse_results(out: &Output, n: usize) -> Vec<Result<(), i32>> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut results = vec![None; n];
    for line in stdout.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("RESULT") {
            continue;
        }
        let Some(i) = w.next().and_then(|i| i.parse::<usize>().ok()) else {
            continue;
        };
        let r = match w.next() {
            Some("ok") => Ok(()),
            _ => Err(w.next().and_then(|e| e.parse().ok()).unwrap_or(-1)),
        };
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(r);
        }
    }
    assert!(
        results.iter().all(Option::is_some),
        "probe did not report every operation: status {} stdout={stdout:?} stderr={:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    results.into_iter().flatten().collect()
}

/// Asserts each result matches its op's expectation; reports every mismatch at once.
pub fn check(ops: &[Op], results: &[Result<(), i32>], who: &str) {
    const EPERM: i32 = 1;
    let wrong: Vec<String> = ops
        .iter()
        .zip(results)
        .filter(|(o, r)| match o.want {
            Want::Ok => r.is_err(),
            Want::Denied { .. } => **r != Err(EPERM),
        })
        .map(|(o, r)| {
            format!(
                "{} {}:{} want {:?}, got {r:?}",
                o.op, o.host, o.port, o.want
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{who}: {}", wrong.join("\n  "));
}
