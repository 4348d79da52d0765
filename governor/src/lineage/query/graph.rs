//! `lineage graph`: the process tree around an event: the launcher and the chain of
//! ancestors down to the process that acted, its siblings and its children, as far as
//! recorded. Rendering (dot, HTML) is the command's.

use rusqlite::Connection;
use serde::Serialize;

use super::{
    events::{self, Event},
    processes::{self, Process},
    trace::{ancestry, ChainEnd},
    QueryError,
};

/// Siblings and children shown at most, each.
pub const MAX_FANOUT: u32 = 50;

/// Where a process stands relative to the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Started the agent; not the agent's.
    Launcher,
    Ancestor,
    /// The process that acted.
    Actor,
    Sibling,
    Child,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub role: Role,
    pub process: Process,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    pub event: Event,
    /// Top of the tree first; a parent always comes before its children.
    pub nodes: Vec<Node>,
    /// (parent, child), indexes into `nodes`.
    pub edges: Vec<(usize, usize)>,
    /// Index of the process that acted (`None`: not on record).
    pub actor: Option<usize>,
    pub chain_end: ChainEnd,
}

/// The tree around event `id`.
pub fn graph(conn: &Connection, id: i64) -> Result<Graph, QueryError> {
    let event = events::get(conn, id)?;
    let (chain, launcher, chain_end) = ancestry(conn, &event)?;
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut push = |nodes: &mut Vec<Node>, role, process, parent: Option<usize>| {
        nodes.push(Node { role, process });
        let i = nodes.len() - 1;
        if let Some(p) = parent {
            edges.push((p, i));
        }
        i
    };
    let mut above = None;
    if let Some(l) = launcher {
        above = Some(push(&mut nodes, Role::Launcher, l, None));
    }
    let n = chain.len();
    let mut actor = None;
    for (depth, p) in chain.into_iter().rev().enumerate() {
        let is_actor = depth + 1 == n;
        let parent_idx = above;
        if is_actor {
            // Siblings first (they share the parent), then the actor.
            if let Some(pi) = parent_idx {
                let parent = nodes[pi].process.clone();
                for s in processes::children(conn, &parent, MAX_FANOUT + 1)? {
                    if s.key() != p.key() {
                        push(&mut nodes, Role::Sibling, s, Some(pi));
                    }
                }
            }
        }
        let role = if is_actor {
            Role::Actor
        } else {
            Role::Ancestor
        };
        let i = push(&mut nodes, role, p, parent_idx);
        above = Some(i);
        if is_actor {
            actor = Some(i);
        }
    }
    if let Some(a) = actor {
        let me = nodes[a].process.clone();
        for c in processes::children(conn, &me, MAX_FANOUT)? {
            push(&mut nodes, Role::Child, c, Some(a));
        }
    }
    Ok(Graph {
        event,
        nodes,
        edges,
        actor,
        chain_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture;

    #[test]
    fn the_tree_around_a_denied_rm() {
        let conn = fixture::db();
        let g = graph(&conn, fixture::EV_DENY).expect("graph");
        let nodes: Vec<(Role, i64)> = g.nodes.iter().map(|n| (n.role, n.process.pid)).collect();
        assert_eq!(
            nodes,
            [
                (Role::Launcher, 100),
                (Role::Ancestor, 200),
                (Role::Ancestor, 300),
                (Role::Sibling, 401),
                (Role::Actor, 400),
            ]
        );
        assert_eq!(g.actor, Some(4));
        assert_eq!(g.edges, [(0, 1), (1, 2), (2, 3), (2, 4)]);
        // mv's siblings: the exited bash and the sh that reused its pid.
        let g = graph(&conn, fixture::EV_LEASED_1).expect("graph");
        let nodes: Vec<(Role, i64)> = g.nodes.iter().map(|n| (n.role, n.process.pid)).collect();
        assert_eq!(
            nodes,
            [
                (Role::Launcher, 100),
                (Role::Ancestor, 200),
                (Role::Sibling, 300),
                (Role::Sibling, 300),
                (Role::Actor, 500),
            ]
        );
    }
}
