"""heapscope's snapshot engine gives the stdlib's answers on random synthetic snapshots."""

from __future__ import annotations

import tracemalloc as stdlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heapscope import tracemalloc as hs

FILES = ["a.py", "b.py", "a.pyc", "dir/c.py", "<unknown>", "x[1].py", "é.py"]
frame = st.tuples(st.sampled_from(FILES), st.integers(0, 5))
frames = st.lists(frame, min_size=1, max_size=4).map(tuple)
trace = st.tuples(st.integers(0, 3), st.integers(0, 2**40), frames, st.integers(1, 6))
traces = st.lists(trace, max_size=40)
PATTERNS = ["a.py", "*.py", "a*", "[ab].py", "b.pyc", "*c*", "?.py", "[!a].py", "x[1].py", "*"]
filters = st.one_of(
    st.builds(
        hs.Filter,
        st.booleans(),
        st.sampled_from(PATTERNS),
        st.one_of(st.none(), st.integers(-1, 5)),
        st.booleans(),
        st.one_of(st.none(), st.integers(0, 3)),
    ),
    st.builds(hs.DomainFilter, st.booleans(), st.integers(0, 3)),
)


def _stdlib_filter(f: hs.BaseFilter) -> stdlib.BaseFilter:
    if isinstance(f, hs.DomainFilter):
        return stdlib.DomainFilter(f.inclusive, f.domain)
    assert isinstance(f, hs.Filter)
    return stdlib.Filter(f.inclusive, f.filename_pattern, f.lineno, f.all_frames, f.domain)


FIELDS = ("size", "size_diff", "count", "count_diff")


def _rows(stats: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (s.traceback._frames, *(getattr(s, a, None) for a in FIELDS), str(s), repr(s))
        for s in stats
    ]


KEYS = [
    ("lineno", False),
    ("filename", False),
    ("traceback", False),
    ("lineno", True),
    ("filename", True),
]


@settings(max_examples=150, deadline=None)
@given(traces, traces)
def test_statistics_and_compare_to(raw: list[Any], raw_old: list[Any]) -> None:
    ours, theirs = hs.Snapshot(list(raw), 4), stdlib.Snapshot(list(raw), 4)
    ours_old, theirs_old = hs.Snapshot(list(raw_old), 4), stdlib.Snapshot(list(raw_old), 4)
    assert ours.traces._get_native() is not None
    for key, cumulative in KEYS:
        assert _rows(ours.statistics(key, cumulative)) == _rows(theirs.statistics(key, cumulative))
        assert _rows(ours.compare_to(ours_old, key, cumulative)) == _rows(
            theirs.compare_to(theirs_old, key, cumulative)
        )


@settings(max_examples=200, deadline=None)
@given(traces, st.lists(filters, max_size=4))
def test_filter_traces(raw: list[Any], fs: list[hs.BaseFilter]) -> None:
    ours = hs.Snapshot(list(raw), 4).filter_traces(fs)
    theirs = stdlib.Snapshot(list(raw), 4).filter_traces([_stdlib_filter(f) for f in fs])
    assert ours.traces._traces == theirs.traces._traces


class _EvenSizes(hs.BaseFilter):
    def _match(self, trace: Any) -> bool:
        return trace[1] % 2 == 0


def test_user_filter_subclass_uses_python_matching() -> None:
    raw = [(0, 2, (("a.py", 1),), 1), (0, 3, (("a.py", 1),), 1)]
    kept = hs.Snapshot(raw, 1).filter_traces([_EvenSizes(True), hs.Filter(False, "b.py")])
    assert kept.traces._traces == [raw[0]]


def test_unrepresentable_traces_fall_back_to_python() -> None:
    raw = [(0, 5, (("a.py", -1),), 1), (0, 7, (("\udcff", 2),), 1)]
    ours, theirs = hs.Snapshot(list(raw), 1), stdlib.Snapshot(list(raw), 1)
    assert ours.traces._get_native() is None
    for key, cumulative in KEYS:
        assert _rows(ours.statistics(key, cumulative)) == _rows(theirs.statistics(key, cumulative))
    assert ours.filter_traces([hs.Filter(False, "a.py")]).traces._traces == [raw[1]]


def test_errors_match_the_stdlib() -> None:
    snapshot = hs.Snapshot([], 1)
    with pytest.raises(ValueError, match=r"^unknown key_type: 'nope'$"):
        snapshot.statistics("nope")
    with pytest.raises(
        ValueError, match=r"^cumulative mode cannot by used with key type 'traceback'$"
    ):
        snapshot.statistics("traceback", cumulative=True)
    with pytest.raises(ValueError, match="cumulative mode"):
        snapshot.compare_to(hs.Snapshot([], 1), "traceback", cumulative=True)
    with pytest.raises(TypeError, match=r"^filters must be a list of filters, not Filter$"):
        snapshot.filter_traces(hs.Filter(True, "a"))  # type: ignore[arg-type]


def test_raw_traces_share_traceback_tuples() -> None:
    raw = [(0, 1, (("a.py", 1), ("b.py", 2)), 2)] * 2 + [(0, 1, (("a.py", 1),), 1)]
    native = hs.Snapshot(raw, 2).traces._get_native()
    assert native is not None
    out = native.raw_traces()
    assert out == raw
    assert out[0][2] is out[1][2]


def test_reprs_match_the_stdlib() -> None:
    raw = [(0, 123456, (("a.py", 1), ("b.py", 2)), 7)]
    ours, theirs = hs.Snapshot(raw, 2), stdlib.Snapshot(raw, 2)
    assert repr(ours.traces) == repr(theirs.traces)
    assert repr(ours.traces[0]) == repr(theirs.traces[0])
    assert str(ours.traces[0]) == str(theirs.traces[0])
    assert repr(ours.statistics("traceback")) == repr(theirs.statistics("traceback"))
    diff_o = ours.compare_to(hs.Snapshot([], 2), "lineno")
    diff_t = theirs.compare_to(stdlib.Snapshot([], 2), "lineno")
    assert repr(diff_o) == repr(diff_t)
    assert str(diff_o[0]) == str(diff_t[0])


def test_an_object_an_ignored_thread_takes_from_a_free_list_is_no_longer_traced() -> None:
    """heapscope's own code runs in ignored threads (the flush thread; `heapscope run`'s
    thread after the program): an object it takes from a free list is no longer the
    program's, so the block's trace goes, instead of staying with the line that made it."""
    from heapscope import _native

    hs.start(5)
    try:
        # More 7-tuples than the free list holds: the last ones are fresh, traced blocks.
        made = [tuple(range(i, i + 7)) for i in range(3000)]
        old = made.pop()
        block = id(old)
        assert hs.get_object_traceback(old) is not None
        before = hs.get_traced_memory()[0]
        del old  # onto the free list of 7-tuples, still traced
        _native._set_thread_ignored(True)
        try:
            new = tuple(range(2000, 2007))
        finally:
            _native._set_thread_ignored(False)
        assert id(new) == block  # the free list handed the block back
        assert hs.get_object_traceback(new) is None
        assert hs.get_traced_memory()[0] < before
    finally:
        hs.stop()
