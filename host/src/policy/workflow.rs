//! A workflow's graph, checked before anything is stored: every node named
//! once, every edge naming a node of the same workflow, no node depending
//! on itself, no cycle. A graph that passes becomes its jobs in an order
//! where each job's prerequisites come before it, so the store can insert
//! them one by one and link each to ids it already has.

use super::{Invalid, JobSpec};
use crate::job::{Dependency, OnFailure, Prereq};
use std::collections::{BTreeSet, HashMap};

/// Most jobs one workflow may have.
pub const WORKFLOW_JOBS_MAX: usize = 100_000;
/// The longest name of a workflow or of one of its jobs.
pub const WORKFLOW_NAME_MAX: usize = 128;

/// A requested workflow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkflowSpec {
    /// A name to show for it.
    pub name: Option<String>,
    /// Its jobs, in the order the request gives them.
    pub jobs: Vec<NodeSpec>,
}

/// One job of a requested workflow.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Its name, unique in the workflow.
    pub name: String,
    /// The job (its own `depends_on` is ignored: edges are `after`).
    pub job: JobSpec,
    /// The jobs of the workflow it waits for, by name.
    pub after: Vec<NodeEdge>,
}

/// An edge of a requested workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEdge {
    /// The name of the job waited for.
    pub node: String,
    /// What happens if that job fails or is cancelled.
    pub on_failure: OnFailure,
}

/// A checked workflow: its jobs in dependency order.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The workflow's name.
    pub name: Option<String>,
    /// Its jobs, each after its prerequisites, with `node` set and
    /// `depends_on` naming earlier positions ([`Prereq::Earlier`]).
    pub jobs: Vec<JobSpec>,
    /// For each position, the job's index in the request (to name it in
    /// errors).
    pub request_index: Vec<usize>,
}

/// Checks `spec`'s graph and orders its jobs (see the module docs). Among
/// jobs free to go next, the request's order is kept. Errors name the
/// field as the request does (`jobs[2].depends_on`).
pub fn plan(spec: WorkflowSpec) -> Result<Plan, Invalid> {
    if let Some(name) = &spec.name {
        check_name(name).map_err(|why| Invalid::new("name", why))?;
    }
    let count = spec.jobs.len();
    if count == 0 || count > WORKFLOW_JOBS_MAX {
        return Err(Invalid::new(
            "jobs",
            format!("a workflow has 1 to {WORKFLOW_JOBS_MAX} jobs, not {count}"),
        ));
    }
    let mut index_of: HashMap<&str, usize> = HashMap::with_capacity(count);
    for (i, node) in spec.jobs.iter().enumerate() {
        check_name(&node.name).map_err(|why| Invalid::new(format!("jobs[{i}].name"), why))?;
        if let Some(first) = index_of.insert(&node.name, i) {
            return Err(Invalid::new(
                format!("jobs[{i}].name"),
                format!("`{}` is the name of jobs[{first}] too", node.name),
            ));
        }
    }
    // prereqs[i]: the request indices job i waits for.
    let mut prereqs: Vec<Vec<(usize, OnFailure)>> = Vec::with_capacity(count);
    for (i, node) in spec.jobs.iter().enumerate() {
        let field = || format!("jobs[{i}].depends_on");
        let mut edges = Vec::with_capacity(node.after.len());
        for edge in &node.after {
            let &j = index_of.get(edge.node.as_str()).ok_or_else(|| {
                Invalid::new(
                    field(),
                    format!("no job of the workflow is named `{}`", edge.node),
                )
            })?;
            if j == i {
                return Err(Invalid::new(
                    field(),
                    format!("`{}` cannot depend on itself", node.name),
                ));
            }
            if edges.iter().any(|&(k, _)| k == j) {
                return Err(Invalid::new(
                    field(),
                    format!("`{}` is named twice", edge.node),
                ));
            }
            edges.push((j, edge.on_failure));
        }
        prereqs.push(edges);
    }
    let order = topological(&prereqs).map_err(|cycle| {
        let names: Vec<&str> = cycle.iter().map(|&i| spec.jobs[i].name.as_str()).collect();
        Invalid::new(
            "jobs",
            format!("the dependencies form a cycle: {}", names.join(" → ")),
        )
    })?;
    let mut position = vec![0; count];
    for (p, &i) in order.iter().enumerate() {
        position[i] = p;
    }
    let names: Vec<String> = spec.jobs.iter().map(|n| n.name.clone()).collect();
    let mut nodes: Vec<Option<NodeSpec>> = spec.jobs.into_iter().map(Some).collect();
    let mut jobs = Vec::with_capacity(count);
    for &i in &order {
        let node = nodes[i].take().expect("each job once");
        let depends_on = prereqs[i]
            .iter()
            .map(|&(j, on_failure)| Dependency {
                on: Prereq::Earlier(position[j]),
                name: names[j].clone(),
                on_failure,
            })
            .collect();
        jobs.push(JobSpec {
            depends_on,
            node: Some(node.name),
            ..node.job
        });
    }
    Ok(Plan {
        name: spec.name,
        jobs,
        request_index: order,
    })
}

/// Kahn's algorithm over request indices, the smallest free index first;
/// a cycle's members, in order, if there is one.
fn topological(prereqs: &[Vec<(usize, OnFailure)>]) -> Result<Vec<usize>, Vec<usize>> {
    let count = prereqs.len();
    let mut waiting: Vec<usize> = prereqs.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, edges) in prereqs.iter().enumerate() {
        for &(j, _) in edges {
            dependents[j].push(i);
        }
    }
    let mut free: BTreeSet<usize> = (0..count).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(i) = free.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                free.insert(d);
            }
        }
    }
    if order.len() == count {
        return Ok(order);
    }
    // Every job left waits for another job left: walk back from one until
    // a job repeats.
    let start = (0..count).find(|&i| waiting[i] > 0).expect("a job left");
    let mut seen = vec![None; count];
    let mut path = Vec::new();
    let mut at = start;
    while seen[at].is_none() {
        seen[at] = Some(path.len());
        path.push(at);
        at = prereqs[at]
            .iter()
            .map(|&(j, _)| j)
            .find(|&j| waiting[j] > 0)
            .expect("a job left waits for a job left");
    }
    // `path[first..]` is the cycle, each job waiting for the next: show it
    // in the order it runs (prerequisite first).
    let first = seen[at].expect("seen");
    let mut cycle: Vec<usize> = path[first..].iter().rev().copied().collect();
    // From its first job in the request, so the message is stable.
    let lowest = (0..cycle.len()).min_by_key(|&k| cycle[k]).expect("a cycle");
    cycle.rotate_left(lowest);
    cycle.push(cycle[0]);
    Err(cycle)
}

/// A workflow's or job's name: 1 to [`WORKFLOW_NAME_MAX`] bytes, no
/// control characters.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > WORKFLOW_NAME_MAX {
        return Err(format!(
            "a name is 1 to {WORKFLOW_NAME_MAX} bytes long, not {}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("`{}` has a control character", name.escape_debug()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, after: &[&str]) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            job: JobSpec::new("m", crate::json::Json::null()),
            after: after
                .iter()
                .map(|a| NodeEdge {
                    node: (*a).to_owned(),
                    on_failure: OnFailure::Cancel,
                })
                .collect(),
        }
    }

    fn spec(nodes: Vec<NodeSpec>) -> WorkflowSpec {
        WorkflowSpec {
            name: None,
            jobs: nodes,
        }
    }

    fn error(nodes: Vec<NodeSpec>) -> String {
        plan(spec(nodes)).unwrap_err().to_string()
    }

    #[test]
    fn jobs_come_after_their_prerequisites_in_request_order_otherwise() {
        let plan = plan(spec(vec![
            node("email", &["ship"]),
            node("pay", &[]),
            node("ship", &["pay", "stock"]),
            node("stock", &[]),
        ]))
        .unwrap();
        let names: Vec<_> = plan.jobs.iter().map(|j| j.node.clone().unwrap()).collect();
        assert_eq!(names, ["pay", "stock", "ship", "email"]);
        assert_eq!(plan.request_index, [1, 3, 2, 0]);
        let ship = &plan.jobs[2].depends_on;
        assert_eq!(
            ship.iter()
                .map(|d| (d.on, d.name.as_str()))
                .collect::<Vec<_>>(),
            [(Prereq::Earlier(0), "pay"), (Prereq::Earlier(1), "stock")]
        );
        assert_eq!(plan.jobs[3].depends_on[0].on, Prereq::Earlier(2));
    }

    #[test]
    fn unknown_names_self_edges_and_repeats_name_the_job() {
        assert_eq!(
            error(vec![node("a", &[]), node("b", &["c"])]),
            "jobs[1].depends_on: no job of the workflow is named `c`"
        );
        assert_eq!(
            error(vec![node("a", &["a"])]),
            "jobs[0].depends_on: `a` cannot depend on itself"
        );
        assert_eq!(
            error(vec![node("a", &[]), node("a", &[])]),
            "jobs[1].name: `a` is the name of jobs[0] too"
        );
        assert_eq!(
            error(vec![node("a", &[]), node("b", &["a", "a"])]),
            "jobs[1].depends_on: `a` is named twice"
        );
        assert!(error(vec![]).starts_with("jobs: a workflow has 1 to"));
        assert!(error(vec![node("", &[])]).starts_with("jobs[0].name: a name is 1 to"));
    }

    #[test]
    fn a_cycle_is_refused_and_shown() {
        let message = error(vec![
            node("start", &[]),
            node("a", &["start", "c"]),
            node("b", &["a"]),
            node("c", &["b"]),
            node("after", &["c"]),
        ]);
        assert_eq!(
            message,
            "jobs: the dependencies form a cycle: a → b → c → a"
        );
        assert_eq!(
            error(vec![node("x", &["y"]), node("y", &["x"])]),
            "jobs: the dependencies form a cycle: x → y → x"
        );
    }
}
