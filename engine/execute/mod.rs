//! Execution: walks the DAG on tokio, running each step once everything it needs succeeded.
//!
//! The walker ([`walk`]) is shared by apply and undo: a node becomes ready when all the nodes it
//! waits for finished successfully; at most `parallelism` run at once. On the first failure no
//! new node starts, running ones finish and are recorded, and the walk ends. Ctrl-C stops the
//! same way. Invariant: a step's "started" record is durable before its action begins, and its
//! "applied"/"failed" record after it ends (see `state::store`).

mod apply;
mod context;
mod evidence;
pub mod leftovers;
mod undo;

use std::collections::{BTreeSet, BinaryHeap};
use std::cmp::Reverse;
use std::future::Future;
use std::pin::Pin;

pub use apply::{apply, confirm_command, refresh};
pub use context::{Context, Options};
pub use undo::undo;

tokio::task_local! {
    /// The name of the step whose task is running, so its shell probes can carry its marker.
    static CURRENT_STEP: String;
}

/// Returns the name of the step the current task runs, if any.
pub fn current_step() -> Option<String> {
    CURRENT_STEP.try_with(Clone::clone).ok()
}

/// The result of one node of the walk.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeResult {
    /// Done: its action ran, or it was already done.
    Succeeded(Done),
    /// Failed with this message.
    Failed(String),
    /// A manual step waiting for the operator.
    Waiting,
}

/// The way a successful node got done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Ran,
    /// A check probe passed, so the action did not run.
    AlreadyDone,
    /// Applied earlier with the same definition: nothing to do.
    Unchanged,
    /// An undo skipped by its `only_if` guard, or with nothing to undo.
    Skipped,
}

/// The end of a walk: what happened to every node.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub ran: Vec<String>,
    pub already_done: Vec<String>,
    pub unchanged: Vec<String>,
    pub skipped: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub waiting: Vec<String>,
    pub not_started: Vec<String>,
    /// Gate reports written during the walk.
    pub reports: Vec<std::path::PathBuf>,
    /// True when Ctrl-C stopped the walk.
    pub interrupted: bool,
}

impl Outcome {
    /// True when every node succeeded.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.waiting.is_empty() && self.not_started.is_empty() && !self.interrupted
    }

    fn record(&mut self, name: &str, result: &NodeResult) {
        let name = name.to_string();
        match result {
            NodeResult::Succeeded(Done::Ran) => self.ran.push(name),
            NodeResult::Succeeded(Done::AlreadyDone) => self.already_done.push(name),
            NodeResult::Succeeded(Done::Unchanged) => self.unchanged.push(name),
            NodeResult::Succeeded(Done::Skipped) => self.skipped.push(name),
            NodeResult::Failed(message) => self.failed.push((name, message.clone())),
            NodeResult::Waiting => self.waiting.push(name),
        }
    }
}

/// A node's future, as the walker runs it.
pub type NodeFuture = Pin<Box<dyn Future<Output = NodeResult> + Send>>;

/// Walks `nodes` (indexes with names); `waits_for[i]` lists the nodes node `i` waits for.
///
/// `start` is called for a node when it is ready and returns its future; `priority` orders
/// ready nodes (smallest first).
pub async fn walk(
    names: &[String],
    waits_for: &[Vec<usize>],
    parallelism: usize,
    mut start: impl FnMut(usize) -> NodeFuture,
    priority: impl Fn(usize) -> i64,
) -> Outcome {
    let count = names.len();
    let mut pending_dependencies: Vec<usize> = waits_for.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (node, waits) in waits_for.iter().enumerate() {
        for &dependency in waits {
            dependents[dependency].push(node);
        }
    }

    let mut ready: BinaryHeap<Reverse<(i64, usize)>> = (0..count).filter(|node| pending_dependencies[*node] == 0).map(|node| Reverse((priority(node), node))).collect();
    let mut running = tokio::task::JoinSet::new();
    let mut finished: BTreeSet<usize> = BTreeSet::new();
    let mut outcome = Outcome::default();
    let mut stopping = false;
    let parallelism = parallelism.max(1);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    loop {
        while !stopping && running.len() < parallelism {
            let Some(Reverse((_, node))) = ready.pop() else { break };
            let future = CURRENT_STEP.scope(names[node].clone(), start(node));
            running.spawn(async move { (node, future.await) });
        }
        if running.is_empty() {
            break;
        }

        let joined = tokio::select! {
            joined = running.join_next() => joined,
            _ = &mut ctrl_c, if !outcome.interrupted => {
                outcome.interrupted = true;
                stopping = true;
                tracing::info!("interrupt received: letting running steps finish");
                continue;
            }
        };
        let Some(joined) = joined else { break };
        let (node, result) = joined.unwrap_or_else(|error| (usize::MAX, NodeResult::Failed(format!("internal error: a step task panicked: {error}"))));
        if node == usize::MAX {
            stopping = true;
            outcome.failed.push(("(unknown)".into(), "a step task panicked".into()));
            continue;
        }

        finished.insert(node);
        outcome.record(&names[node], &result);
        match result {
            NodeResult::Succeeded(_) => {
                for &dependent in &dependents[node] {
                    pending_dependencies[dependent] -= 1;
                    if pending_dependencies[dependent] == 0 {
                        ready.push(Reverse((priority(dependent), dependent)));
                    }
                }
            }
            NodeResult::Failed(_) => stopping = true,
            NodeResult::Waiting => {}
        }
    }

    outcome.not_started = (0..count).filter(|node| !finished.contains(node)).map(|node| names[node].clone()).collect();
    outcome
}
