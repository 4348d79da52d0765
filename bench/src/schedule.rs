//! The interleaved schedule every benchmark group uses: `2·rounds + 1` blocks alternating
//! without and with governor (off on off … off, see `governor_bench::stats`). In each block
//! every case is timed `repeats` times, round-robin; the block keeps each case's fastest
//! batch, because interference from other load on the machine only ever adds time.

use anyhow::Result;

/// How many blocks and batches.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Blocks with governor; there is one more block without it.
    pub rounds: usize,
    /// Timed batches of each case per block.
    pub repeats: usize,
}

/// Per case: ns/op of each block without governor, then of each block with it.
pub type Blocks = Vec<(Vec<f64>, Vec<f64>)>;

/// Runs the schedule over `cases`. `set_governor(on)` attaches or detaches governor before a
/// block (and detaches it at the end); `measure(case)` times one batch and returns ns/op.
pub fn run<C>(
    sched: Schedule,
    cases: &[C],
    label: impl Fn(&C) -> String,
    mut set_governor: impl FnMut(bool) -> Result<()>,
    mut measure: impl FnMut(&C) -> Result<f64>,
) -> Result<Blocks> {
    let mut out: Blocks = cases.iter().map(|_| (Vec::new(), Vec::new())).collect();
    let blocks = 2 * sched.rounds + 1;
    for b in 0..blocks {
        let on = b % 2 == 1;
        set_governor(on)?;
        let mut best = vec![f64::INFINITY; cases.len()];
        for _ in 0..sched.repeats {
            for (i, c) in cases.iter().enumerate() {
                best[i] = best[i].min(measure(c)?);
            }
        }
        let summary: Vec<String> = cases
            .iter()
            .zip(&best)
            .map(|(c, ns)| format!("{} {ns:.0}", label(c)))
            .collect();
        eprintln!(
            "bench: block {}/{blocks} {} governor (ns/op): {}",
            b + 1,
            if on { "with" } else { "without" },
            summary.join(", ")
        );
        for (i, ns) in best.into_iter().enumerate() {
            if on {
                out[i].1.push(ns);
            } else {
                out[i].0.push(ns);
            }
        }
    }
    set_governor(false)?;
    Ok(out)
}
