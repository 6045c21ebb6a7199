//! The dependency graph: steps as nodes of a petgraph DAG, edges from a step to what needs it.
//!
//! Edges come from `needs` and, implicitly, from using another step's capture. Invariant: a
//! built [`StepGraph`] is acyclic; a cycle is reported as a diagnostic naming the full path.
//! Orders are deterministic: among steps that are ready together, source order wins.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::cmp::Reverse;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::diagnostic::{Diagnostics, Problem};
use crate::model::{Call, CaptureSource, Runbook, Step, Undo, UndoOrder};
use crate::syntax::Reference;

/// Why one step depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// Listed in `needs`.
    Needs,
    /// Uses a capture the other step reads.
    Capture,
}

/// The DAG of a runbook's steps; node weights are indexes into `runbook.steps`.
#[derive(Debug, Clone)]
pub struct StepGraph {
    pub graph: DiGraph<usize, Edge>,
    nodes: Vec<NodeIndex>,
}

impl StepGraph {
    /// Builds the graph, reporting dependency cycles.
    pub fn build(runbook: &Runbook) -> Result<StepGraph, Diagnostics> {
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..runbook.steps.len()).map(|index| graph.add_node(index)).collect();
        let (step_indexes, capture_owners) = name_indexes(runbook);

        for (index, step) in runbook.steps.iter().enumerate() {
            for need in &step.needs {
                if let Some(&dependency) = step_indexes.get(need.name.as_str()) {
                    graph.update_edge(nodes[dependency], nodes[index], Edge::Needs);
                }
            }
            for capture in used_captures(step) {
                if let Some(&owner) = capture_owners.get(capture.as_str()) {
                    if owner != index && graph.find_edge(nodes[owner], nodes[index]).is_none() {
                        graph.add_edge(nodes[owner], nodes[index], Edge::Capture);
                    }
                }
            }
        }

        let step_graph = StepGraph { graph, nodes };
        step_graph.check_cycles(runbook)?;
        Ok(step_graph)
    }

    /// Returns the steps a step depends on directly (needs and captures), as indexes.
    pub fn dependencies(&self, step: usize) -> Vec<usize> {
        let mut found: Vec<usize> = self.graph.neighbors_directed(self.nodes[step], Direction::Incoming).map(|node| self.graph[node]).collect();
        found.sort_unstable();
        found
    }

    /// Returns the steps that depend on a step directly, as indexes.
    pub fn dependents(&self, step: usize) -> Vec<usize> {
        let mut found: Vec<usize> = self.graph.neighbors_directed(self.nodes[step], Direction::Outgoing).map(|node| self.graph[node]).collect();
        found.sort_unstable();
        found
    }

    /// Returns a step and everything that depends on it, transitively.
    pub fn with_dependents(&self, step: usize) -> BTreeSet<usize> {
        let mut found = BTreeSet::from([step]);
        let mut queue = VecDeque::from([step]);
        while let Some(current) = queue.pop_front() {
            for dependent in self.dependents(current) {
                if found.insert(dependent) {
                    queue.push_back(dependent);
                }
            }
        }
        found
    }

    /// Returns a step and everything it depends on, transitively.
    pub fn with_dependencies(&self, step: usize) -> BTreeSet<usize> {
        let mut found = BTreeSet::from([step]);
        let mut queue = VecDeque::from([step]);
        while let Some(current) = queue.pop_front() {
            for dependency in self.dependencies(current) {
                if found.insert(dependency) {
                    queue.push_back(dependency);
                }
            }
        }
        found
    }

    /// Returns the apply order: a topological order where ready steps go in source order.
    pub fn apply_order(&self) -> Vec<usize> {
        let edges: Vec<(usize, usize)> = self.graph.edge_indices().filter_map(|edge| self.graph.edge_endpoints(edge)).map(|(from, to)| (self.graph[from], self.graph[to])).collect();
        stable_topological_order(self.nodes.len(), &edges, |index| index)
    }

    /// The undo order of `selected` steps, and for each the steps whose undo must finish first.
    ///
    /// A step is undone before the steps it needs, except a step whose undo has
    /// `order = "after_needs"`. Such a handler runs after the undo of the steps it needs, but
    /// before the undo of what those depend on. Everything that depends on it is undone before
    /// the steps it needs, too.
    pub fn undo_order(&self, runbook: &Runbook, selected: &BTreeSet<usize>) -> Vec<(usize, Vec<usize>)> {
        let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
        for &step in selected {
            let after_needs = is_after_needs(&runbook.steps[step]);
            for dependency in self.dependencies(step).into_iter().filter(|index| selected.contains(index)) {
                if after_needs {
                    edges.insert((dependency, step));
                } else {
                    edges.insert((step, dependency));
                }
            }
            if after_needs {
                let needs: Vec<usize> = self.dependencies(step).into_iter().filter(|index| selected.contains(index)).collect();
                for dependent in self.with_dependents(step).into_iter().filter(|index| *index != step && selected.contains(index)) {
                    for &dependency in &needs {
                        edges.insert((dependent, dependency));
                    }
                }
                // The handler still runs before the undo of what its needs themselves depend on.
                for &need in &needs {
                    for deeper in self.dependencies(need).into_iter().filter(|index| selected.contains(index) && !needs.contains(index)) {
                        edges.insert((step, deeper));
                    }
                }
            }
        }

        let members: Vec<usize> = selected.iter().copied().collect();
        let position: BTreeMap<usize, usize> = members.iter().enumerate().map(|(position, step)| (*step, position)).collect();
        let local_edges: Vec<(usize, usize)> = edges.iter().map(|(from, to)| (position[from], position[to])).collect();
        let order = stable_topological_order(members.len(), &local_edges, |local| Reverse(members[local]));

        order
            .into_iter()
            .map(|local| {
                let step = members[local];
                let before: Vec<usize> = edges.iter().filter(|(_, to)| *to == step).map(|(from, _)| *from).collect();
                (step, before)
            })
            .collect()
    }

    fn check_cycles(&self, runbook: &Runbook) -> Result<(), Diagnostics> {
        let mut problems = Diagnostics::default();
        for component in petgraph::algo::tarjan_scc(&self.graph) {
            let is_cycle = component.len() > 1 || self.graph.contains_edge(component[0], component[0]);
            if is_cycle {
                problems.push(self.cycle_problem(runbook, &component));
            }
        }
        problems.sort();
        if problems.problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn cycle_problem(&self, runbook: &Runbook, component: &[NodeIndex]) -> Problem {
        let members: BTreeSet<NodeIndex> = component.iter().copied().collect();
        let start = *component.iter().min_by_key(|node| self.graph[**node]).expect("a cycle has members");
        let path = self.cycle_path(start, &members);

        let names: Vec<&str> = path.iter().map(|node| runbook.steps[self.graph[*node]].name.as_str()).collect();
        let first_step = &runbook.steps[self.graph[start]];
        let mut problem = Problem::error(&runbook.source, first_step.name_span.clone(), format!("dependency cycle: {}", names.join(" → ")), "this step is part of the cycle");
        for pair in path.windows(2) {
            let (dependent, dependency) = (&runbook.steps[self.graph[pair[0]]], &runbook.steps[self.graph[pair[1]]]);
            if let Some(need) = dependent.needs.iter().find(|need| need.name == dependency.name) {
                problem.labels.push((need.span.clone(), format!("`{}` needs `{}`", dependent.name, dependency.name)));
            } else if let Some(reference) = capture_references(dependent).into_iter().find(|reference| dependency.captures.iter().any(|capture| capture.name == reference.segments[1].name)) {
                let label = format!("`{}` uses capture `{}` of `{}`", dependent.name, reference.segments[1].name, dependency.name);
                problem.labels.push((reference.span.clone(), label));
            }
        }
        problem.with_help("remove one of these dependencies to break the cycle")
    }

    /// Finds a path start → ... → start following "needs" (dependent → dependency) inside the component.
    fn cycle_path(&self, start: NodeIndex, members: &BTreeSet<NodeIndex>) -> Vec<NodeIndex> {
        let mut previous: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(current) = queue.pop_front() {
            let mut dependencies: Vec<NodeIndex> = self.graph.neighbors_directed(current, Direction::Incoming).filter(|node| members.contains(node)).collect();
            dependencies.sort_by_key(|node| self.graph[*node]);
            for next in dependencies {
                if next == start {
                    let mut path = vec![start];
                    let mut cursor = current;
                    while cursor != start {
                        path.push(cursor);
                        cursor = previous[&cursor];
                    }
                    path[1..].reverse();
                    path.push(start);
                    return path;
                }
                if !previous.contains_key(&next) && next != start {
                    previous.insert(next, current);
                    queue.push_back(next);
                }
            }
        }
        vec![start, start]
    }

    /// Renders the graph as Graphviz DOT, edges pointing from a step to what needs it.
    pub fn to_dot(&self, runbook: &Runbook) -> String {
        let mut dot = format!("digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n", dot_id(&runbook.name));
        for (index, step) in runbook.steps.iter().enumerate() {
            let shape = match step.kind {
                crate::model::StepKind::Step => "box",
                crate::model::StepKind::Gate => "diamond",
                crate::model::StepKind::Manual => "parallelogram",
            };
            dot.push_str(&format!("  s{index} [label={}, shape={shape}];\n", dot_id(&format!("{} {}", step.kind.keyword(), step.name))));
        }
        for edge in self.graph.edge_indices() {
            let (from, to) = self.graph.edge_endpoints(edge).expect("edge exists");
            let style = if self.graph[edge] == Edge::Capture { " [style=dashed, label=\"capture\"]" } else { "" };
            dot.push_str(&format!("  s{} -> s{}{style};\n", self.graph[from], self.graph[to]));
        }
        dot.push_str("}\n");
        dot
    }
}

/// Maps each step name, and each capture name, to the index of the step declaring it.
///
/// The first declaration wins, as with [`Runbook::step_index`] and [`Runbook::capture_owner`];
/// the maps keep building the graph linear in the number of steps.
fn name_indexes(runbook: &Runbook) -> (HashMap<&str, usize>, HashMap<&str, usize>) {
    let mut steps = HashMap::with_capacity(runbook.steps.len());
    let mut captures = HashMap::new();
    for (index, step) in runbook.steps.iter().enumerate() {
        steps.entry(step.name.as_str()).or_insert(index);
        for capture in &step.captures {
            captures.entry(capture.name.as_str()).or_insert(index);
        }
    }
    (steps, captures)
}

fn dot_id(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn is_after_needs(step: &Step) -> bool {
    matches!(&step.undo, Undo::Explicit(undo) if undo.order == UndoOrder::AfterNeeds)
}

/// Kahn's algorithm; among ready nodes the one with the smallest `priority` goes first.
fn stable_topological_order<K: Ord>(count: usize, edges: &[(usize, usize)], priority: impl Fn(usize) -> K) -> Vec<usize> {
    let mut indegree = vec![0usize; count];
    let mut outgoing: Vec<Vec<usize>> = vec![Vec::new(); count];
    for &(from, to) in edges {
        indegree[to] += 1;
        outgoing[from].push(to);
    }

    let mut ready: BinaryHeap<Reverse<(K, usize)>> = (0..count).filter(|node| indegree[*node] == 0).map(|node| Reverse((priority(node), node))).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(Reverse((_, node))) = ready.pop() {
        order.push(node);
        for &next in &outgoing[node] {
            indegree[next] -= 1;
            if indegree[next] == 0 {
                ready.push(Reverse((priority(next), next)));
            }
        }
    }
    order
}

/// Returns the capture names a step uses anywhere in its definition.
pub fn used_captures(step: &Step) -> BTreeSet<String> {
    capture_references(step).into_iter().map(|reference| reference.segments[1].name.clone()).collect()
}

/// Returns every `capture.NAME` reference in a step's definition, with its span.
pub fn capture_references(step: &Step) -> Vec<&Reference> {
    let mut references: Vec<&Reference> = Vec::new();
    for call in step_calls(step) {
        collect_call_references(call, &mut references);
    }
    for capture in &step.captures {
        match &capture.source {
            CaptureSource::YamlKey { file, key } => {
                references.extend(file.interpolations().map(|i| &i.reference));
                references.extend(key.interpolations().map(|i| &i.reference));
            }
            CaptureSource::File(file) | CaptureSource::Command(file) => references.extend(file.interpolations().map(|i| &i.reference)),
            CaptureSource::Stdout => {}
        }
    }
    if let Some(instructions) = &step.instructions {
        references.extend(instructions.interpolations().map(|i| &i.reference));
    }
    references.retain(|reference| reference.segments.len() == 2 && reference.segments[0].name == "capture");
    references
}

/// Returns every call in a step: action, checks, undo action and guards, evidence.
pub fn step_calls(step: &Step) -> Vec<&Call> {
    let mut calls: Vec<&Call> = step.action.iter().chain(step.checks.iter()).chain(step.on_fail.iter()).collect();
    if let Undo::Explicit(undo) = &step.undo {
        calls.push(&undo.action);
        calls.extend(undo.only_if.iter());
    }
    calls
}

fn collect_call_references<'a>(call: &'a Call, found: &mut Vec<&'a Reference>) {
    for expr in call.args.values() {
        expr.collect_references(found);
    }
    if let Some(nested) = &call.nested {
        collect_call_references(nested, found);
    }
}
