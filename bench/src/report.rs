//! The benchmark report: one [`Row`] per measured operation and caller, rendered as a text
//! table for people and as JSON for machines (`cargo xtask bench` writes it under
//! `target/`).

use serde_json::{json, Map, Value};

use crate::stats::{self, Spread, StatsError};

/// One operation measured for one kind of caller, in blocks without and with governor
/// (`without_ns.len() == with_ns.len() + 1`, see [`crate::stats`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Benchmark group ("enforcement").
    pub group: String,
    /// The operation, e.g. "create+unlink".
    pub op: String,
    /// "non-agent" or "agent".
    pub who: String,
    /// Iterations per timed batch.
    pub iters: u64,
    /// The overhead this row must stay within, in percent.
    pub target_pct: f64,
    /// Cost in ns/op of each block without governor.
    pub without_ns: Vec<f64>,
    /// Cost in ns/op of each block with governor.
    pub with_ns: Vec<f64>,
}

/// What a [`Row`] comes to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Median ns/op over the blocks without governor.
    pub without_ns: f64,
    /// Median ns/op over the blocks with governor.
    pub with_ns: f64,
    /// Overhead in percent: median and range over the "with" blocks.
    pub overhead_pct: Spread,
    /// Overhead in percent of the fastest "with" block over the fastest "without" block:
    /// a second estimate, for noise that only ever adds time.
    pub fastest_pct: f64,
    /// The median overhead is within the target.
    pub pass: bool,
}

impl Row {
    pub fn verdict(&self) -> Result<Verdict, StatsError> {
        let overheads = stats::bracketed_overheads(&self.without_ns, &self.with_ns)?;
        let pct: Vec<f64> = overheads.iter().map(|o| o * 100.0).collect();
        let shape = || StatsError::Shape {
            without: self.without_ns.len(),
            with: self.with_ns.len(),
        };
        let overhead_pct = Spread::of(&pct).ok_or_else(shape)?;
        Ok(Verdict {
            without_ns: stats::median(&self.without_ns).ok_or_else(shape)?,
            with_ns: stats::median(&self.with_ns).ok_or_else(shape)?,
            overhead_pct,
            fastest_pct: 100.0
                * (stats::min(&self.with_ns).ok_or_else(shape)?
                    / stats::min(&self.without_ns).ok_or_else(shape)?
                    - 1.0),
            pass: overhead_pct.median <= self.target_pct,
        })
    }

    fn to_json(&self) -> Result<Value, StatsError> {
        let v = self.verdict()?;
        Ok(json!({
            "group": self.group,
            "op": self.op,
            "who": self.who,
            "iters_per_batch": self.iters,
            "without_ns_per_op": v.without_ns,
            "with_ns_per_op": v.with_ns,
            "overhead_pct": v.overhead_pct.median,
            "overhead_pct_min": v.overhead_pct.min,
            "overhead_pct_max": v.overhead_pct.max,
            "fastest_overhead_pct": v.fastest_pct,
            "target_pct": self.target_pct,
            "pass": v.pass,
            "blocks_without_ns_per_op": self.without_ns,
            "blocks_with_ns_per_op": self.with_ns,
        }))
    }
}

/// The text table: one line per row, then the verdict.
pub fn table(rows: &[Row]) -> Result<String, StatsError> {
    let mut out = format!(
        "{:<12} {:<15} {:<10} {:>8} {:>12} {:>12} {:>9} {:>17} {:>8} {:>7}  {}\n",
        "group",
        "operation",
        "who",
        "iters",
        "without ns",
        "with ns",
        "overhead",
        "spread",
        "fastest",
        "target",
        "result"
    );
    for r in rows {
        let v = r.verdict()?;
        out.push_str(&format!(
            "{:<12} {:<15} {:<10} {:>8} {:>12.0} {:>12.0} {:>8}% {:>17} {:>7}% {:>6}%  {}\n",
            r.group,
            r.op,
            r.who,
            r.iters,
            v.without_ns,
            v.with_ns,
            signed(v.overhead_pct.median),
            format!(
                "[{}, {}]",
                signed(v.overhead_pct.min),
                signed(v.overhead_pct.max)
            ),
            signed(v.fastest_pct),
            format!("≤{}", r.target_pct),
            if v.pass { "PASS" } else { "FAIL" }
        ));
    }
    Ok(out)
}

fn signed(x: f64) -> String {
    format!("{x:+.1}")
}

/// True if every row meets its target.
pub fn all_pass(rows: &[Row]) -> Result<bool, StatsError> {
    for r in rows {
        if !r.verdict()?.pass {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The machine-readable report: `machine` (facts about where it ran), the rows, the
/// breakdowns, and `pass`.
pub fn to_json(
    machine: Map<String, Value>,
    rows: &[Row],
    breakdown: &[Breakdown],
) -> Result<Value, StatsError> {
    let rows = rows
        .iter()
        .map(Row::to_json)
        .collect::<Result<Vec<_>, _>>()?;
    let pass = rows.iter().all(|r| r["pass"] == true);
    Ok(json!({
        "schema": 1,
        "machine": machine,
        "rows": rows,
        "breakdown": breakdown.iter().map(Breakdown::to_json).collect::<Vec<_>>(),
        "pass": pass,
    }))
}

/// Where one operation's time goes with governor attached, from the kernel's BPF statistics
/// (see the driver's `bpfstats`): measured inside one batch, so other load on the machine
/// inflates the programs' time and the operation's alike, and their ratio stays meaningful
/// where the with/without comparison drowns in noise.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    pub op: String,
    pub who: String,
    /// Wall-clock ns/op of the batch, programs included.
    pub ns_per_op: f64,
    /// Per program: name, runs per operation, ns per run.
    pub programs: Vec<(String, f64, f64)>,
}

impl Breakdown {
    /// ns/op spent in governor's programs.
    pub fn bpf_ns_per_op(&self) -> f64 {
        // fold, not sum: an empty f64 sum is -0.0.
        self.programs
            .iter()
            .fold(0.0, |total, (_, runs, ns)| total + runs * ns)
    }

    /// The overhead the programs' own run time accounts for, in percent of the operation
    /// without them.
    pub fn program_overhead_pct(&self) -> f64 {
        let bpf = self.bpf_ns_per_op();
        100.0 * bpf / (self.ns_per_op - bpf)
    }

    fn to_json(&self) -> Value {
        json!({
            "op": self.op,
            "who": self.who,
            "ns_per_op": self.ns_per_op,
            "bpf_ns_per_op": self.bpf_ns_per_op(),
            "program_overhead_pct": self.program_overhead_pct(),
            "programs": self.programs.iter().map(|(name, runs, ns)| json!({
                "name": name, "runs_per_op": runs, "ns_per_run": ns,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The breakdown as text: one line per operation and caller, its programs by cost.
pub fn breakdown_table(rows: &[Breakdown]) -> String {
    let mut out = format!(
        "{:<15} {:<10} {:>10} {:>9} {:>9}  {}\n",
        "operation", "who", "ns/op", "bpf ns", "bpf %", "programs (runs/op × ns/run)"
    );
    for b in rows {
        let mut progs = b.programs.clone();
        progs.sort_by(|x, y| (y.1 * y.2).total_cmp(&(x.1 * x.2)));
        // Programs that ran in under one operation in 20 (other processes' doing) are in
        // the sum and the JSON, not in the text.
        let progs: Vec<String> = progs
            .iter()
            .filter(|(_, runs, _)| *runs >= 0.05)
            .map(|(name, runs, ns)| format!("{name} {runs:.2}×{ns:.0}"))
            .collect();
        out.push_str(&format!(
            "{:<15} {:<10} {:>10.0} {:>9.0} {:>8.2}%  {}\n",
            b.op,
            b.who,
            b.ns_per_op,
            b.bpf_ns_per_op(),
            b.program_overhead_pct(),
            if progs.is_empty() {
                "(none ran)".to_owned()
            } else {
                progs.join(", ")
            }
        ));
    }
    out
}

/// The breakdowns of a report made by [`to_json`]; `None` if it has none.
pub fn breakdown_from_json(report: &Value) -> Option<Vec<Breakdown>> {
    report["breakdown"]
        .as_array()?
        .iter()
        .map(|b| {
            Some(Breakdown {
                op: b["op"].as_str()?.to_owned(),
                who: b["who"].as_str()?.to_owned(),
                ns_per_op: b["ns_per_op"].as_f64()?,
                programs: b["programs"]
                    .as_array()?
                    .iter()
                    .map(|p| {
                        Some((
                            p["name"].as_str()?.to_owned(),
                            p["runs_per_op"].as_f64()?,
                            p["ns_per_run"].as_f64()?,
                        ))
                    })
                    .collect::<Option<Vec<_>>>()?,
            })
        })
        .collect()
}

/// The rows of a report made by [`to_json`]; `None` if it is not one.
pub fn rows_from_json(report: &Value) -> Option<Vec<Row>> {
    let floats =
        |v: &Value| -> Option<Vec<f64>> { v.as_array()?.iter().map(Value::as_f64).collect() };
    report["rows"]
        .as_array()?
        .iter()
        .map(|r| {
            Some(Row {
                group: r["group"].as_str()?.to_owned(),
                op: r["op"].as_str()?.to_owned(),
                who: r["who"].as_str()?.to_owned(),
                iters: r["iters_per_batch"].as_u64()?,
                target_pct: r["target_pct"].as_f64()?,
                without_ns: floats(&r["blocks_without_ns_per_op"])?,
                with_ns: floats(&r["blocks_with_ns_per_op"])?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(op: &str, target: f64, off: &[f64], on: &[f64]) -> Row {
        Row {
            group: "enforcement".into(),
            op: op.into(),
            who: "agent".into(),
            iters: 1000,
            target_pct: target,
            without_ns: off.to_vec(),
            with_ns: on.to_vec(),
        }
    }

    #[test]
    fn verdict_and_table() {
        let pass = row(
            "open+read",
            3.0,
            &[1000.0, 1000.0, 1000.0],
            &[1020.0, 1010.0],
        );
        let fail = row("connect", 1.0, &[1000.0, 1000.0, 1000.0], &[1050.0, 1010.0]);
        let v = pass.verdict().unwrap();
        assert_eq!(v.without_ns, 1000.0);
        assert_eq!(v.with_ns, 1015.0);
        assert!((v.overhead_pct.median - 1.5).abs() < 1e-9);
        assert!((v.fastest_pct - 1.0).abs() < 1e-9);
        assert!(v.pass);
        assert!(!fail.verdict().unwrap().pass);

        let t = table(&[pass.clone(), fail.clone()]).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("group"));
        assert!(
            lines[1].contains("open+read") && lines[1].ends_with("PASS"),
            "{t}"
        );
        assert!(
            lines[1].contains("+1.5%") && lines[1].contains("[+1.0, +2.0]"),
            "{t}"
        );
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(cols[9], "+1.0%", "the fastest column: {t}");
        assert!(
            lines[2].contains("connect") && lines[2].ends_with("FAIL"),
            "{t}"
        );
        assert!(!all_pass(&[pass.clone(), fail.clone()]).unwrap());
        assert!(all_pass(std::slice::from_ref(&pass)).unwrap());

        let j = to_json(Map::new(), &[pass.clone(), fail.clone()], &[]).unwrap();
        assert_eq!(rows_from_json(&j), Some(vec![pass, fail]));
        assert_eq!(rows_from_json(&json!({"rows": [{"op": "x"}]})), None);
        assert_eq!(j["pass"], false);
        assert_eq!(j["rows"][0]["pass"], true);
        let pct = j["rows"][1]["overhead_pct"].as_f64().unwrap();
        assert!((pct - 3.0).abs() < 1e-9, "{pct}");
        assert_eq!(j["rows"][1]["blocks_with_ns_per_op"][0], 1050.0);
    }

    #[test]
    fn exactly_at_target_passes() {
        // 130 / 128 - 1 = 1.5625% exactly in binary floating point.
        let r = row("x", 1.5625, &[128.0, 128.0], &[130.0]);
        assert!(r.verdict().unwrap().pass);
        let r = row("x", 1.5, &[128.0, 128.0], &[130.0]);
        assert!(!r.verdict().unwrap().pass);
    }

    #[test]
    fn malformed_rows_are_errors() {
        assert!(table(&[row("x", 1.0, &[100.0], &[101.0])]).is_err());
        assert!(to_json(Map::new(), &[row("x", 1.0, &[100.0, 0.0], &[101.0])], &[]).is_err());
    }

    #[test]
    fn breakdown_sums_programs() {
        let b = Breakdown {
            op: "open+read".into(),
            who: "non-agent".into(),
            ns_per_op: 1100.0,
            programs: vec![
                ("file_open".into(), 1.0, 30.0),
                ("file_permission".into(), 2.0, 35.0),
            ],
        };
        assert_eq!(b.bpf_ns_per_op(), 100.0);
        assert!((b.program_overhead_pct() - 10.0).abs() < 1e-9);
        let t = breakdown_table(std::slice::from_ref(&b));
        let line = t.lines().nth(1).unwrap();
        assert!(line.contains("10.00%"), "{t}");
        // The costliest program first.
        assert!(
            line.ends_with("file_permission 2.00×35, file_open 1.00×30"),
            "{t}"
        );
        let rare = Breakdown {
            programs: vec![("ptrace_access_c".into(), 0.01, 1000.0)],
            ..b.clone()
        };
        let t = breakdown_table(&[rare]);
        assert!(t.lines().nth(1).unwrap().ends_with("(none ran)"), "{t}");
        let empty = Breakdown {
            programs: vec![],
            ..b.clone()
        };
        assert!(empty.bpf_ns_per_op().is_sign_positive());
        let j = to_json(Map::new(), &[], std::slice::from_ref(&b)).unwrap();
        assert_eq!(j["breakdown"][0]["bpf_ns_per_op"], 100.0);
        assert_eq!(breakdown_from_json(&j), Some(vec![b]));
    }
}
