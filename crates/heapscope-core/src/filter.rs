//! `Snapshot.filter_traces` with tracemalloc's `Filter` and `DomainFilter` semantics.
//!
//! A trace is kept when at least one inclusive filter matches it (or there is none) and every
//! exclusive filter lets it through. Matching runs once per distinct frame and traceback, not
//! once per trace.

use crate::fnmatch::{normalize_filename, Pattern};
use crate::snapshot::Snapshot;

/// tracemalloc's `Filter`: a file name pattern, optionally a line number and a domain.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Keep matching traces (`true`) or drop them (`false`).
    pub inclusive: bool,
    pattern: Pattern,
    /// Only frames at this line match (`None`: any line). A value no line can have never
    /// matches.
    pub lineno: Option<i64>,
    /// Match any frame of the traceback rather than only the most recent.
    pub all_frames: bool,
    /// Only traces of this domain match (`None`: any domain).
    pub domain: Option<i64>,
}

impl Filter {
    /// A filter on file names matching the shell pattern `filename_pattern` (`fnmatch`
    /// semantics; a `.pyc` suffix is read as `.py` on both sides).
    pub fn new(
        inclusive: bool,
        filename_pattern: &str,
        lineno: Option<i64>,
        all_frames: bool,
        domain: Option<i64>,
    ) -> Self {
        let pattern = Pattern::new(normalize_filename(filename_pattern));
        Filter {
            inclusive,
            pattern,
            lineno,
            all_frames,
            domain,
        }
    }

    /// Whether the frame matches the pattern and line, ignoring `inclusive`.
    fn frame_matches(&self, filename: &str, lineno: u32) -> bool {
        self.pattern.matches(normalize_filename(filename))
            && self.lineno.is_none_or(|l| l == i64::from(lineno))
    }

    /// tracemalloc's `Filter._match_frame`: the frame test, inverted for exclusive filters.
    pub fn match_frame(&self, filename: &str, lineno: u32) -> bool {
        self.frame_matches(filename, lineno) == self.inclusive
    }

    /// tracemalloc's `Filter._match_traceback` over frames most recent first; `matched[i]`
    /// says whether frame `i` of the traceback matches the pattern and line. A traceback
    /// without frames matches nothing.
    fn match_traceback(&self, mut matched: impl Iterator<Item = bool>) -> bool {
        if self.all_frames {
            if matched.any(|m| m) {
                self.inclusive
            } else {
                !self.inclusive
            }
        } else {
            matched.next().unwrap_or(false) == self.inclusive
        }
    }

    fn combine_domain(&self, res: bool, domain: u32) -> bool {
        match self.domain {
            None => res,
            Some(d) if self.inclusive => res && d == i64::from(domain),
            Some(d) => res || d != i64::from(domain),
        }
    }
}

/// tracemalloc's `DomainFilter`: keep (or drop) the traces of one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainFilter {
    /// Keep the domain's traces (`true`) or drop them (`false`).
    pub inclusive: bool,
    /// The address space.
    pub domain: i64,
}

/// Either kind of filter.
#[derive(Debug, Clone)]
pub enum TraceFilter {
    /// A file name filter.
    File(Filter),
    /// A domain filter.
    Domain(DomainFilter),
}

impl TraceFilter {
    fn inclusive(&self) -> bool {
        match self {
            TraceFilter::File(f) => f.inclusive,
            TraceFilter::Domain(d) => d.inclusive,
        }
    }
}

/// Per-filter verdicts precomputed for every traceback of a snapshot.
enum Prepared<'f> {
    File(&'f Filter, Vec<bool>),
    Domain(&'f DomainFilter),
}

impl Prepared<'_> {
    fn new<'f>(filter: &'f TraceFilter, snapshot: &Snapshot) -> Prepared<'f> {
        match filter {
            TraceFilter::Domain(d) => Prepared::Domain(d),
            TraceFilter::File(f) => {
                let frames: Vec<bool> = snapshot
                    .frames
                    .iter()
                    .map(|fr| f.frame_matches(&fr.filename, fr.lineno))
                    .collect();
                let tracebacks = snapshot
                    .tracebacks
                    .iter()
                    .map(|tb| {
                        f.match_traceback(
                            tb.frames
                                .iter()
                                .map(|&id| frames.get(id as usize).copied().unwrap_or(false)),
                        )
                    })
                    .collect();
                Prepared::File(f, tracebacks)
            }
        }
    }

    fn matches(&self, domain: u32, traceback: usize) -> bool {
        match self {
            Prepared::Domain(d) => (i64::from(domain) == d.domain) == d.inclusive,
            Prepared::File(f, tbs) => {
                f.combine_domain(tbs.get(traceback).copied().unwrap_or(false), domain)
            }
        }
    }
}

/// `Snapshot.filter_traces`: a new snapshot with the traces the filters keep, in their order.
/// With no filters, a copy.
pub fn filter_traces(snapshot: &Snapshot, filters: &[TraceFilter]) -> Snapshot {
    let (include, exclude): (Vec<&TraceFilter>, Vec<&TraceFilter>) =
        filters.iter().partition(|f| f.inclusive());
    let include: Vec<Prepared> = include
        .into_iter()
        .map(|f| Prepared::new(f, snapshot))
        .collect();
    let exclude: Vec<Prepared> = exclude
        .into_iter()
        .map(|f| Prepared::new(f, snapshot))
        .collect();
    let traces = snapshot
        .traces
        .iter()
        .filter(|t| {
            let tb = t.traceback as usize;
            (include.is_empty() || include.iter().any(|p| p.matches(t.domain, tb)))
                && exclude.iter().all(|p| p.matches(t.domain, tb))
        })
        .copied()
        .collect();
    Snapshot {
        frames: snapshot.frames.clone(),
        tracebacks: snapshot.tracebacks.clone(),
        traces,
        traceback_limit: snapshot.traceback_limit,
    }
}
