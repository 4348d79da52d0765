//! `governor lineage graph EVENT_ID --format dot|html`: the process tree around an event
//! (launcher, ancestors, the acting process, its siblings and children) with the decision
//! as its own node, red for a deny, green for a lease-allow, orange for observe mode. `dot`
//! is Graphviz text; `html` a self-contained page with the tree laid out here as SVG (no
//! network fetches) and the dot text below it.

use std::{fmt::Write as _, process::ExitCode};

use super::print_json;
use crate::{
    cli::{GraphFormat, LineageGraphArgs},
    lineage::query::{
        self,
        graph::{Graph, Role},
    },
};

pub fn run(args: LineageGraphArgs) -> anyhow::Result<ExitCode> {
    let conn = query::open(&args.out.db)?;
    let g = query::graph::graph(&conn, args.event_id)?;
    if args.out.json {
        return print_json(&g);
    }
    match args.format {
        GraphFormat::Dot => print!("{}", dot(&g)),
        GraphFormat::Html => print!("{}", html(&g)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The decision's colour.
fn colour(decision: &str) -> &'static str {
    match decision {
        "deny" => "#d62728",
        "lease-allow" => "#2ca02c",
        _ => "#ff7f0e",
    }
}

/// A process node's two lines.
fn process_label(g: &Graph, i: usize) -> [String; 2] {
    let n = &g.nodes[i];
    let mut cmd = n.process.command();
    if cmd.chars().count() > 40 {
        cmd = cmd.chars().take(39).collect::<String>() + "…";
    }
    let who = match n.role {
        Role::Launcher => "launcher".to_owned(),
        _ => n.process.agent.clone().unwrap_or_else(|| "-".to_owned()),
    };
    [format!("pid {} [{who}]", n.process.pid), cmd]
}

/// The decision node's lines.
fn decision_label(g: &Graph) -> Vec<String> {
    let e = &g.event;
    let why = match (&e.lease_id, &e.rule) {
        (Some(l), _) if e.decision == "lease-allow" => format!("lease {l}"),
        (_, Some(r)) => format!("rule {r}"),
        _ => "no rule".to_owned(),
    };
    vec![
        format!("#{} {} {}", e.id, e.decision, e.class),
        e.path.clone().unwrap_or_else(|| e.target.clone()),
        why,
        e.time.clone(),
    ]
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub(super) fn dot(g: &Graph) -> String {
    let mut out = String::from(
        "digraph lineage {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", \
         fontsize=10];\n",
    );
    let c = colour(&g.event.decision);
    for i in 0..g.nodes.len() {
        let label = process_label(g, i).map(|l| dot_escape(&l)).join("\\n");
        let style = match g.nodes[i].role {
            Role::Launcher => "style=dashed".to_owned(),
            Role::Actor => format!("color=\"{c}\", penwidth=3"),
            Role::Sibling | Role::Child => "color=gray50, fontcolor=gray30".to_owned(),
            Role::Ancestor => String::new(),
        };
        let _ = writeln!(out, "  p{i} [label=\"{label}\", {style}];");
    }
    for (a, b) in &g.edges {
        let _ = writeln!(out, "  p{a} -> p{b};");
    }
    let label = decision_label(g)
        .iter()
        .map(|l| dot_escape(l))
        .collect::<Vec<_>>()
        .join("\\n");
    let _ = writeln!(
        out,
        "  decision [label=\"{label}\", shape=octagon, style=filled, fillcolor=\"{c}\", \
         fontcolor=white];"
    );
    match g.actor {
        Some(a) => {
            let _ = writeln!(out, "  p{a} -> decision [color=\"{c}\", penwidth=2];");
        }
        None => {
            let _ = writeln!(
                out,
                "  unknown [label=\"pid {} (not on record)\", style=dotted];\n  unknown -> \
                 decision [color=\"{c}\", penwidth=2];",
                g.event.tgid
            );
        }
    }
    out.push_str("}\n");
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const BOX_W: f64 = 300.0;
const BOX_H: f64 = 48.0;
const GAP_X: f64 = 30.0;
const GAP_Y: f64 = 40.0;

/// Tree layout: depth from the top, leaves left to right in order, each parent centred
/// over its children; the decision to the right of everything, level with the acting
/// process. Returns (column, depth) per node, and the decision node's.
fn layout(g: &Graph) -> (Vec<(f64, usize)>, (f64, usize)) {
    let n = g.nodes.len();
    let mut children = vec![Vec::new(); n];
    let mut has_parent = vec![false; n];
    for &(a, b) in &g.edges {
        children[a].push(b);
        has_parent[b] = true;
    }
    let mut pos = vec![(0.0, 0usize); n];
    let mut next_leaf = 0.0;
    // Iterative post-order from each root (no recursion on recorded data).
    for root in (0..n).filter(|&i| !has_parent[i]) {
        let mut stack = vec![(root, 0usize, false)];
        while let Some((i, depth, done)) = stack.pop() {
            if done || children[i].is_empty() {
                let col = if children[i].is_empty() {
                    let c = next_leaf;
                    next_leaf += 1.0;
                    c
                } else {
                    let cs = &children[i];
                    (pos[cs[0]].0 + pos[cs[cs.len() - 1]].0) / 2.0
                };
                pos[i] = (col, depth);
                continue;
            }
            stack.push((i, depth, true));
            for &c in children[i].iter().rev() {
                stack.push((c, depth + 1, false));
            }
        }
    }
    let decision = (next_leaf, g.actor.map_or(0, |a| pos[a].1));
    (pos, decision)
}

fn svg_box(out: &mut String, x: f64, y: f64, lines: &[String], stroke: &str, fill: &str) {
    let _ = writeln!(
        out,
        "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{BOX_W:.0}\" height=\"{:.0}\" rx=\"6\" \
         fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2\"/>",
        BOX_H + 14.0 * (lines.len().saturating_sub(2)) as f64
    );
    let text = if fill == "white" { "black" } else { "white" };
    for (k, l) in lines.iter().enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"{:.0}\" y=\"{:.0}\" fill=\"{text}\">{}</text>",
            x + 8.0,
            y + 18.0 + 14.0 * k as f64,
            xml_escape(l)
        );
    }
}

pub(super) fn html(g: &Graph) -> String {
    let (pos, decision) = layout(g);
    let c = colour(&g.event.decision);
    let cols = pos.iter().map(|p| p.0).fold(decision.0, f64::max) + 1.0;
    let rows = pos.iter().map(|p| p.1).fold(decision.1, usize::max) + 1;
    let width = cols * (BOX_W + GAP_X) + GAP_X;
    let height = rows as f64 * (BOX_H + GAP_Y) + GAP_Y + 30.0;
    let at = |(col, depth): (f64, usize)| {
        (
            GAP_X + col * (BOX_W + GAP_X),
            GAP_Y + depth as f64 * (BOX_H + GAP_Y),
        )
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         font-family=\"monospace\" font-size=\"12\">\n"
    );
    for &(a, b) in &g.edges {
        let (ax, ay) = at(pos[a]);
        let (bx, by) = at(pos[b]);
        let _ = writeln!(
            svg,
            "<line x1=\"{:.0}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{by:.0}\" stroke=\"#888\"/>",
            ax + BOX_W / 2.0,
            ay + BOX_H,
            bx + BOX_W / 2.0
        );
    }
    let (dx, dy) = at(decision);
    if let Some(a) = g.actor {
        let (ax, ay) = at(pos[a]);
        let _ = writeln!(
            svg,
            "<line x1=\"{:.0}\" y1=\"{:.0}\" x2=\"{dx:.0}\" y2=\"{:.0}\" stroke=\"{c}\" \
             stroke-width=\"3\" stroke-dasharray=\"6 3\"/>",
            ax + BOX_W,
            ay + BOX_H / 2.0,
            dy + BOX_H / 2.0
        );
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let (x, y) = at(pos[i]);
        let stroke = match n.role {
            Role::Actor => c,
            Role::Launcher => "#555",
            Role::Ancestor => "#222",
            Role::Sibling | Role::Child => "#aaa",
        };
        svg_box(&mut svg, x, y, &process_label(g, i), stroke, "white");
    }
    svg_box(&mut svg, dx, dy, &decision_label(g), c, c);
    svg.push_str("</svg>\n");
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>governor lineage: \
         event {id}</title>\n<style>body{{font-family:sans-serif;margin:1em}} \
         pre{{background:#f4f4f4;padding:1em}}</style></head><body>\n<h1>Event {id}: {dec} \
         {class} {target}</h1>\n<p>Process tree around the decision ({role}); the acting \
         process and the decision are outlined in its colour.</p>\n{svg}<h2>Graphviz \
         dot</h2>\n<pre>{dot}</pre>\n</body></html>\n",
        id = g.event.id,
        dec = xml_escape(&g.event.decision),
        class = xml_escape(&g.event.class),
        target = xml_escape(g.event.path.as_deref().unwrap_or(&g.event.target)),
        role = match g.event.decision.as_str() {
            "deny" => "red: denied",
            "lease-allow" => "green: allowed under a lease",
            _ => "orange: observe mode, not prevented",
        },
        dot = xml_escape(&dot(g)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture;

    #[test]
    fn dot_highlights_the_decision() {
        let conn = fixture::db();
        let g = query::graph::graph(&conn, fixture::EV_DENY).expect("graph");
        let d = dot(&g);
        assert!(
            d.starts_with("digraph lineage {") && d.ends_with("}\n"),
            "{d}"
        );
        assert!(
            d.contains("decision [label=\"#4 deny unlink\\n/etc/passwd\\nrule /etc")
                && d.contains("fillcolor=\"#d62728\""),
            "{d}"
        );
        assert!(d.contains("p4 [label=\"pid 400 [claude]\\nrm -rf /etc/passwd\", color=\"#d62728\", penwidth=3]"), "{d}");
        assert!(d.contains("p4 -> decision"), "{d}");
        assert!(d.contains("p0 [label=\"pid 100 [launcher]"), "{d}");
        let g = query::graph::graph(&conn, fixture::EV_LEASED_1).expect("graph");
        assert!(
            dot(&g).contains("fillcolor=\"#2ca02c\""),
            "lease-allow is green"
        );
    }

    #[test]
    fn html_is_self_contained_with_an_svg() {
        let conn = fixture::db();
        let g = query::graph::graph(&conn, fixture::EV_DENY).expect("graph");
        let h = html(&g);
        assert!(h.contains("<svg") && h.contains("</svg>"), "{h}");
        assert!(h.contains("rm -rf /etc/passwd"));
        assert!(h.contains("&lt;") || !h.contains("<platform"), "escaped");
        assert!(
            !h.contains("http://") || h.matches("http://").count() == 1,
            "only the xmlns"
        );
        assert!(!h.contains("<script") && !h.contains("src="));
        let g = query::graph::graph(&conn, fixture::EV_CODEX).expect("graph");
        assert!(dot(&g).contains("pid 700 (not on record)"));
        assert!(html(&g).contains("<svg"));
    }
}
