//! How many decision log lines an agent gets: at most [`LINES_PER_WINDOW`] per
//! [`WINDOW`]. An agent that floods governor with denied operations would otherwise turn the
//! daemon's log into the bottleneck (a formatted line and a write per decision: measured in
//! the VM, five times slower than everything else the daemon does with a decision) and bury
//! other agents' lines. Every decision is still recorded in the lineage; the log says how many
//! lines it left out, per agent and window, and where to find them.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// The window the limit counts in.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Decision lines one agent may log per window.
pub const LINES_PER_WINDOW: u32 = 100;

/// Lines left out for one agent in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub agent: String,
    pub lines: u64,
    /// How long the window lasted (from its first line to its end).
    pub over: Duration,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

/// Per-agent line budget.
#[derive(Debug, Default)]
pub struct Throttle {
    windows: HashMap<String, Window>,
}

impl Throttle {
    /// Whether `agent`'s decision at `now` gets its log line. A window that has ended is
    /// reported through [`Throttle::expired`], not here.
    pub fn allow(&mut self, agent: &str, now: Instant) -> bool {
        let w = match self.windows.get_mut(agent) {
            Some(w) => w,
            None => self.windows.entry(agent.to_owned()).or_insert(Window {
                started: now,
                logged: 0,
                suppressed: 0,
            }),
        };
        if w.logged < LINES_PER_WINDOW {
            w.logged += 1;
            true
        } else {
            w.suppressed += 1;
            false
        }
    }

    /// Ends every window older than [`WINDOW`] at `now`; returns those that left lines out.
    pub fn expired(&mut self, now: Instant) -> Vec<Suppressed> {
        let mut out = Vec::new();
        self.windows.retain(|agent, w| {
            let age = now.saturating_duration_since(w.started);
            if age < WINDOW {
                return true;
            }
            if w.suppressed > 0 {
                out.push(Suppressed {
                    agent: agent.clone(),
                    lines: w.suppressed,
                    over: age,
                });
            }
            false
        });
        out.sort_by(|a, b| a.agent.cmp(&b.agent));
        out
    }

    /// Ends every window (the daemon stops); returns those that left lines out.
    pub fn finish(&mut self, now: Instant) -> Vec<Suppressed> {
        self.expired(now + WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_agent_gets_its_lines_then_counts_the_rest() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        let logged = (0..250).filter(|_| t.allow("flood", t0)).count();
        assert_eq!(logged, LINES_PER_WINDOW as usize);
        // Another agent's lines are not buried by the flood.
        assert!(t.allow("quiet", t0 + Duration::from_millis(10)));
        // Nothing is reported before the window ends...
        assert!(t.expired(t0 + Duration::from_millis(999)).is_empty());
        // ...then the flood's window is, once; the quiet agent left nothing out.
        let s = t.expired(t0 + WINDOW);
        assert_eq!(
            s,
            [Suppressed {
                agent: "flood".into(),
                lines: 150,
                over: WINDOW
            }]
        );
        assert!(t.expired(t0 + WINDOW * 2).is_empty());
        // A new window gives the agent its lines again.
        assert!(t.allow("flood", t0 + WINDOW * 2));
    }

    #[test]
    fn finishing_reports_open_windows() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        for _ in 0..=LINES_PER_WINDOW {
            t.allow("a", t0);
        }
        let s = t.finish(t0);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].lines, 1);
    }
}
