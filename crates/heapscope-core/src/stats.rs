//! `Snapshot.statistics` and `Snapshot.compare_to` with tracemalloc's exact semantics.
//!
//! Traces are summed per traceback first (one pass over dense arrays), then per group key;
//! keys are compared as interned ids, never as strings, until the final sort.

use std::cmp::Ordering;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::error::CoreError;
use crate::snapshot::Snapshot;

/// What statistics group traces by (tracemalloc's `key_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// The whole traceback.
    Traceback,
    /// The file name of the most recent frame (line number 0 in the key).
    Filename,
    /// The file name and line number of the most recent frame.
    Lineno,
}

impl KeyType {
    /// Parse tracemalloc's spelling (`"traceback"`, `"filename"`, `"lineno"`).
    pub fn parse(key_type: &str) -> Result<Self, CoreError> {
        match key_type {
            "traceback" => Ok(KeyType::Traceback),
            "filename" => Ok(KeyType::Filename),
            "lineno" => Ok(KeyType::Lineno),
            other => Err(CoreError::InvalidArgument(format!(
                "unknown key_type: {other:?}"
            ))),
        }
    }
}

/// One frame of a group key: file name and line number.
pub type KeyFrame = (Arc<str>, u32);

/// Bytes and blocks of one group (tracemalloc's `Statistic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statistic {
    /// The group key: frames most recent first (tracemalloc's raw order).
    pub key: Vec<KeyFrame>,
    /// Total size of the group's blocks.
    pub size: u64,
    /// Number of blocks (in cumulative mode, of frame occurrences).
    pub count: u64,
}

/// A group's figures in a new snapshot and their change since an old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticDiff {
    /// The group key: frames most recent first.
    pub key: Vec<KeyFrame>,
    /// Size in the new snapshot.
    pub size: u64,
    /// New size minus old size.
    pub size_diff: i64,
    /// Count in the new snapshot.
    pub count: u64,
    /// New count minus old count.
    pub count_diff: i64,
}

/// tracemalloc orders tracebacks by their frames oldest first, each frame as (file, line).
fn cmp_keys(a: &[KeyFrame], b: &[KeyFrame]) -> Ordering {
    a.iter().rev().cmp(b.iter().rev())
}

/// Group the traces of `snapshot` by `key_type`, unsorted.
pub fn group_by(
    snapshot: &Snapshot,
    key_type: KeyType,
    cumulative: bool,
) -> Result<Vec<Statistic>, CoreError> {
    if cumulative && key_type == KeyType::Traceback {
        return Err(CoreError::InvalidArgument(
            "cumulative mode cannot by used with key type 'traceback'".to_owned(),
        ));
    }
    // Sum per traceback: the only pass over every trace.
    let ntb = snapshot.tracebacks.len();
    let mut tb_sums = vec![(0u64, 0u64); ntb];
    for trace in &snapshot.traces {
        if let Some(sum) = tb_sums.get_mut(trace.traceback as usize) {
            sum.0 = sum.0.saturating_add(trace.size);
            sum.1 += 1;
        }
    }
    // Canonical ids of frames: (file, line) and file alone, whatever the function name.
    let mut line_ids: HashMap<(&str, u32), u32> = HashMap::new();
    let mut file_ids: HashMap<&str, u32> = HashMap::new();
    let mut line_keys: Vec<KeyFrame> = Vec::new();
    let mut file_keys: Vec<KeyFrame> = Vec::new();
    let mut line_of = Vec::with_capacity(snapshot.frames.len());
    let mut file_of = Vec::with_capacity(snapshot.frames.len());
    for frame in &snapshot.frames {
        let next = line_keys.len() as u32;
        let id = *line_ids
            .entry((&*frame.filename, frame.lineno))
            .or_insert_with(|| {
                line_keys.push((Arc::clone(&frame.filename), frame.lineno));
                next
            });
        line_of.push(id);
        let next = file_keys.len() as u32;
        let id = *file_ids.entry(&*frame.filename).or_insert_with(|| {
            file_keys.push((Arc::clone(&frame.filename), 0));
            next
        });
        file_of.push(id);
    }
    let (key_of, keys) = match key_type {
        KeyType::Lineno => (&line_of, &line_keys),
        _ => (&file_of, &file_keys),
    };
    let mut groups: Vec<Statistic> = Vec::new();
    if key_type == KeyType::Traceback {
        let mut ids: HashMap<Vec<u32>, usize> = HashMap::new();
        for (tb, &(size, count)) in snapshot.tracebacks.iter().zip(&tb_sums) {
            if count == 0 {
                continue;
            }
            let canon: Vec<u32> = tb.frames.iter().map(|&f| line_of[f as usize]).collect();
            let slot = *ids.entry(canon).or_insert_with_key(|canon| {
                let key = canon
                    .iter()
                    .map(|&l| line_keys[l as usize].clone())
                    .collect();
                groups.push(Statistic {
                    key,
                    size: 0,
                    count: 0,
                });
                groups.len() - 1
            });
            add(&mut groups[slot], size, count);
        }
        return Ok(groups);
    }
    // Dense slots per key id, plus one for tracebacks without frames.
    let empty = keys.len();
    let mut slots: Vec<(u64, u64, bool)> = vec![(0, 0, false); keys.len() + 1];
    let mut bump = |slot: usize, size: u64, count: u64| {
        let s = &mut slots[slot];
        s.0 = s.0.saturating_add(size);
        s.1 += count;
        s.2 = true;
    };
    for (tb, &(size, count)) in snapshot.tracebacks.iter().zip(&tb_sums) {
        if count == 0 {
            continue;
        }
        if cumulative {
            // Like the stdlib, a frame repeated in one traceback counts once per occurrence.
            for &f in &*tb.frames {
                bump(key_of[f as usize] as usize, size, count);
            }
        } else {
            match tb.frames.first() {
                Some(&f) => bump(key_of[f as usize] as usize, size, count),
                None => bump(empty, size, count),
            }
        }
    }
    for (slot, &(size, count, used)) in slots.iter().enumerate() {
        if used {
            let key = keys.get(slot).map(|k| vec![k.clone()]).unwrap_or_default();
            groups.push(Statistic { key, size, count });
        }
    }
    Ok(groups)
}

fn add(stat: &mut Statistic, size: u64, count: u64) {
    stat.size = stat.size.saturating_add(size);
    stat.count += count;
}

/// `Snapshot.statistics`: groups sorted by (size, count, traceback), biggest first.
pub fn statistics(
    snapshot: &Snapshot,
    key_type: KeyType,
    cumulative: bool,
) -> Result<Vec<Statistic>, CoreError> {
    let mut stats = group_by(snapshot, key_type, cumulative)?;
    stats.sort_unstable_by(|a, b| {
        (b.size, b.count)
            .cmp(&(a.size, a.count))
            .then_with(|| cmp_keys(&b.key, &a.key))
    });
    Ok(stats)
}

fn diff(new: u64, old: u64) -> i64 {
    (i128::from(new) - i128::from(old)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// `Snapshot.compare_to`: the groups of `new` with their change since `old`, sorted by
/// (`|size_diff|`, size, `|count_diff|`, count, traceback), biggest first. Groups only in `old`
/// appear with size 0.
pub fn compare_to(
    new: &Snapshot,
    old: &Snapshot,
    key_type: KeyType,
    cumulative: bool,
) -> Result<Vec<StatisticDiff>, CoreError> {
    let new_groups = group_by(new, key_type, cumulative)?;
    let old_groups = group_by(old, key_type, cumulative)?;
    let mut old_index: HashMap<&[KeyFrame], usize> = old_groups
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.as_slice(), i))
        .collect();
    let mut out = Vec::with_capacity(new_groups.len() + old_groups.len());
    for stat in &new_groups {
        let (old_size, old_count) = match old_index.remove(stat.key.as_slice()) {
            Some(i) => (old_groups[i].size, old_groups[i].count),
            None => (0, 0),
        };
        out.push(StatisticDiff {
            key: stat.key.clone(),
            size: stat.size,
            size_diff: diff(stat.size, old_size),
            count: stat.count,
            count_diff: diff(stat.count, old_count),
        });
    }
    let mut gone: Vec<usize> = old_index.into_values().collect();
    gone.sort_unstable();
    for i in gone {
        let stat = &old_groups[i];
        out.push(StatisticDiff {
            key: stat.key.clone(),
            size: 0,
            size_diff: diff(0, stat.size),
            count: 0,
            count_diff: diff(0, stat.count),
        });
    }
    out.sort_unstable_by(|a, b| {
        let ka = (
            a.size_diff.unsigned_abs(),
            a.size,
            a.count_diff.unsigned_abs(),
            a.count,
        );
        let kb = (
            b.size_diff.unsigned_abs(),
            b.size,
            b.count_diff.unsigned_abs(),
            b.count,
        );
        kb.cmp(&ka).then_with(|| cmp_keys(&b.key, &a.key))
    });
    Ok(out)
}
