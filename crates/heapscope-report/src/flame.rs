//! The flame-graph tree of one view: stacks merged by common prefix (root first), with tiny
//! subtrees pruned into one "other" node per parent so big profiles stay small and fast.

use hashbrown::HashMap;

use heapscope_core::profile::{Profile, View};

use crate::labels::{frames_root_first, stack_of};

/// `FlameTree::frame` value of the root node.
pub const ROOT: i64 = -1;
/// `FlameTree::frame` value of an "other" node (pruned siblings merged together).
pub const OTHER: i64 = -2;
/// `FlameTree::frame` values from this one down are domain nodes (`DOMAIN_BASE - domain`): a
/// leaf under a stack's frames for blocks a C extension reported in its own tracemalloc domain.
pub const DOMAIN_BASE: i64 = -3;

/// The `FlameTree::frame` value of the node of `domain`.
pub fn domain_node(domain: u32) -> i64 {
    DOMAIN_BASE - i64::from(domain)
}

/// The domain of a domain node, `None` for any other node.
pub fn node_domain(frame: i64) -> Option<u32> {
    (frame <= DOMAIN_BASE).then(|| (DOMAIN_BASE - frame) as u32)
}

/// How much of a tree to keep.
#[derive(Debug, Clone, Copy)]
pub struct Pruning {
    /// Nodes holding less than this share of the root's bytes are merged into "other".
    pub min_share: f64,
    /// At most this many nodes are kept (the threshold rises until the tree fits).
    pub max_nodes: usize,
}

impl Default for Pruning {
    fn default() -> Self {
        Pruning {
            min_share: 0.0002,
            max_nodes: 20_000,
        }
    }
}

/// A tree in pre-order, as parallel arrays; node 0 is the root; children follow their parent
/// and are sorted by bytes, largest first, any "other" node last.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlameTree {
    /// Frame id in the profile, or [`ROOT`] / [`OTHER`].
    pub frame: Vec<i64>,
    /// Index of the parent node; -1 for the root.
    pub parent: Vec<i64>,
    /// Bytes of the node and everything under it.
    pub bytes: Vec<u64>,
    /// Blocks of the node and everything under it.
    pub count: Vec<u64>,
    /// For "other" nodes: `(node index, how many nodes were merged into it)`.
    pub merged: Vec<(usize, u64)>,
    /// Nodes of the full tree before pruning.
    pub full_size: usize,
}

struct Node {
    frame: i64,
    parent: usize,
    bytes: u64,
    count: u64,
}

/// Builds the pruned tree of `view`.
pub fn build(profile: &Profile, view: View, pruning: Pruning) -> FlameTree {
    let mut nodes = vec![Node {
        frame: ROOT,
        parent: usize::MAX,
        bytes: 0,
        count: 0,
    }];
    let mut index: HashMap<(usize, i64), usize> = HashMap::new();
    for stat in profile.view(view) {
        let Some(stack) = stack_of(profile, stat) else {
            continue;
        };
        if stat.bytes == 0 && stat.count == 0 {
            continue;
        }
        let mut at = 0;
        nodes[0].bytes += stat.bytes;
        nodes[0].count += stat.count;
        let domain = (stack.domain != 0).then(|| domain_node(stack.domain));
        let ids = frames_root_first(profile, stack).map(|(id, _)| i64::from(id));
        for id in ids.chain(domain) {
            let next = *index.entry((at, id)).or_insert_with(|| {
                nodes.push(Node {
                    frame: id,
                    parent: at,
                    bytes: 0,
                    count: 0,
                });
                nodes.len() - 1
            });
            nodes[next].bytes += stat.bytes;
            nodes[next].count += stat.count;
            at = next;
        }
    }
    prune(&nodes, pruning)
}

enum Item {
    Node(usize),
    Other { bytes: u64, count: u64, merged: u64 },
}

fn prune(nodes: &[Node], pruning: Pruning) -> FlameTree {
    let total = nodes[0].bytes;
    let mut threshold = ((total as f64) * pruning.min_share).ceil() as u64;
    let kept = nodes.iter().filter(|n| n.bytes >= threshold).count();
    if kept > pruning.max_nodes {
        let mut sizes: Vec<u64> = nodes.iter().map(|n| n.bytes).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        // Leave room for the "other" nodes pruning adds (at most one per kept node).
        threshold = sizes[pruning.max_nodes / 2]
            .saturating_add(1)
            .max(threshold);
    }
    // Children as one flat array sliced by parent (no per-node allocation: trees of 100k
    // stacks have millions of nodes).
    let mut start = vec![0usize; nodes.len() + 1];
    for n in nodes.iter().skip(1) {
        start[n.parent + 1] += 1;
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut fill = start.clone();
    let mut flat = vec![0usize; nodes.len().saturating_sub(1)];
    for (i, n) in nodes.iter().enumerate().skip(1) {
        flat[fill[n.parent]] = i;
        fill[n.parent] += 1;
    }
    let children = |i: usize| &flat[start[i]..start[i + 1]];
    let mut out = FlameTree {
        full_size: nodes.len(),
        ..FlameTree::default()
    };
    // Depth-first with an explicit stack of (item, parent index in `out`): deep stacks cannot
    // overflow the call stack.
    let mut todo = vec![(Item::Node(0), -1i64)];
    while let Some((item, parent)) = todo.pop() {
        let here = out.frame.len() as i64;
        let i = match item {
            Item::Other {
                bytes,
                count,
                merged,
            } => {
                out.merged.push((out.frame.len(), merged));
                push(&mut out, OTHER, parent, bytes, count);
                continue;
            }
            Item::Node(i) => i,
        };
        push(
            &mut out,
            nodes[i].frame,
            parent,
            nodes[i].bytes,
            nodes[i].count,
        );
        let (mut keep, drop): (Vec<usize>, Vec<usize>) = children(i)
            .iter()
            .partition(|&&c| nodes[c].bytes >= threshold);
        if !drop.is_empty() {
            let bytes = drop.iter().map(|&c| nodes[c].bytes).sum();
            let count = drop.iter().map(|&c| nodes[c].count).sum();
            // Pushed first, popped last: "other" comes after its kept siblings.
            todo.push((
                Item::Other {
                    bytes,
                    count,
                    merged: drop.len() as u64,
                },
                here,
            ));
        }
        keep.sort_by(|&a, &b| {
            nodes[b]
                .bytes
                .cmp(&nodes[a].bytes)
                .then(nodes[a].frame.cmp(&nodes[b].frame))
        });
        for &c in keep.iter().rev() {
            todo.push((Item::Node(c), here));
        }
    }
    out
}

fn push(out: &mut FlameTree, frame: i64, parent: i64, bytes: u64, count: u64) {
    out.frame.push(frame);
    out.parent.push(parent);
    out.bytes.push(bytes);
    out.count.push(count);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{profile_from_json, synthetic};

    fn sample() -> Profile {
        profile_from_json(
            r#"{"frames": [["m.py", "main", 1], ["m.py", "big", 5], ["m.py", "small", 9]],
                "stacks": [{"frames": [1, 0]}, {"frames": [2, 0]}, {"frames": [0]}],
                "at_peak": [[0, 9000, 3], [1, 1, 1], [2, 999, 2]]}"#,
        )
        .expect("valid")
    }

    #[test]
    fn merges_prefixes_and_orders_children() {
        let t = build(
            &sample(),
            View::Peak,
            Pruning {
                min_share: 0.0,
                max_nodes: 100,
            },
        );
        assert_eq!(t.frame, vec![ROOT, 0, 1, 2]);
        assert_eq!(t.parent, vec![-1, 0, 1, 1]);
        assert_eq!(t.bytes, vec![10_000, 10_000, 9000, 1]);
        assert_eq!(t.count, vec![6, 6, 3, 1]);
        assert!(t.merged.is_empty());
    }

    #[test]
    fn prunes_tiny_frames_into_other() {
        let t = build(
            &sample(),
            View::Peak,
            Pruning {
                min_share: 0.01,
                max_nodes: 100,
            },
        );
        assert_eq!(t.frame, vec![ROOT, 0, 1, OTHER]);
        assert_eq!(t.bytes[3], 1);
        assert_eq!(t.merged, vec![(3, 1)]);
    }

    #[test]
    fn empty_view_is_a_bare_root() {
        let t = build(&sample(), View::End, Pruning::default());
        assert_eq!(t.frame, vec![ROOT]);
        assert_eq!(t.bytes, vec![0]);
    }

    #[test]
    fn big_profiles_stay_under_the_node_cap() {
        let p = synthetic(20_000, 7);
        let t = build(
            &p,
            View::Peak,
            Pruning {
                min_share: 0.0,
                max_nodes: 2000,
            },
        );
        assert!(t.frame.len() <= 2000, "{} nodes", t.frame.len());
        assert_eq!(t.bytes[0], p.at_peak.iter().map(|s| s.bytes).sum::<u64>());
        // Children never hold more than their parent: sizes stay consistent after pruning.
        for (i, &p) in t.parent.iter().enumerate().skip(1) {
            assert!(t.bytes[i] <= t.bytes[p as usize]);
        }
    }
}
