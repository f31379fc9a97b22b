"""The part of the pytest plugin that is registered only with ``--heapscope``.

What is measured: the *call* phase of each test (the test function's body, inside all other
``pytest_runtest_call`` wrappers), not its fixtures' setup and teardown, as memray's plugin
does. Memory that a fixture allocates is therefore not counted against a test's limits, and a
test that stores what it allocates in a function-scoped fixture "leaks" it (it is still held
when the test returns).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Generator
from typing import Any

import _pytest
import pluggy
import pytest

from heapscope import _follow
from heapscope._measure import Measurement, Measuring, package_pattern
from heapscope._pytest_limits import Limits, MarkerError, limits_of, violations
from heapscope._tables import format_lines
from heapscope._units import format_size

__all__ = ["HeapscopePlugin"]

_LIMITS = pytest.StashKey[Limits]()
_MEASURED = pytest.StashKey["Measurement | str"]()

# pytest's and pluggy's own allocations during the call phase (hook results, the
# PYTEST_CURRENT_TEST variable that pytest writes through os.environ) are not the test's.
_PYTEST_INTERNALS = (package_pattern(_pytest), package_pattern(pluggy), "<frozen os>")

_ALREADY_TRACING = (
    "heapscope's tracer was already running when the test started (heapscope.tracemalloc "
    "started by the test session, or by python -X tracemalloc / PYTHONTRACEMALLOC, which "
    "start it when it is imported)"
)
_STOPPED = "the test stopped heapscope's tracer"


class HeapscopePlugin:
    """Traces each test, checks its limits and prints the end-of-session summary.

    Under pytest-xdist each worker measures its own tests and sends the figures to the
    controller on the call-phase report (``report.heapscope``), where the summary is made.
    """

    def __init__(self, config: pytest.Config) -> None:
        # In a process that `heapscope run` records (e.g. an xdist worker of a recorded run),
        # the tracer goes to the tests: the process's stream ends here, and a new one starts
        # when the session is over (`pytest_unconfigure`).
        self._suspended = _follow.suspend()
        self.top: int = config.getoption("heapscope_top")
        self.nframe: int = config.getoption("heapscope_traceback_limit")
        self.native: bool = config.getoption("heapscope_native")
        self.base = str(config.rootpath)
        self._highest: list[tuple[int, int, str, Measurement]] = []
        self._order = itertools.count()
        self._unmeasured: list[tuple[str, str]] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Read the test's limit markers; a bad one is a setup error with a clear message."""
        try:
            item.stash[_LIMITS] = limits_of(item)
            return
        except MarkerError as exc:
            message = f"heapscope: {exc}"
        pytest.fail(message, pytrace=False)  # outside the except: no chained traceback

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        """Run the test under the tracer, then fail it if it exceeded a limit."""
        measuring = Measuring(
            nframe=self.nframe, top=self.top, exclude=_PYTEST_INTERNALS, native=self.native
        )
        started = measuring.start()
        try:
            result = yield
        finally:  # a failing test is measured too (for the summary), but not checked
            measurement = measuring.finish()
            reason = _STOPPED if started else _ALREADY_TRACING
            item.stash[_MEASURED] = reason if measurement is None else measurement
        limits = item.stash.get(_LIMITS, Limits())
        if measurement is None:
            if limits:
                pytest.fail(f"heapscope: cannot check the memory limits: {reason}", pytrace=False)
            return result
        messages = violations(limits, measurement, base=self.base)
        if messages:
            pytest.fail("\n\n".join(messages), pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Attach the measurement to the call-phase report (xdist carries it to the controller)."""
        report = yield
        measured = item.stash.get(_MEASURED, None)
        if call.when == "call" and measured is not None:
            report.heapscope = (  # type: ignore[attr-defined]
                measured if isinstance(measured, str) else measured.to_plain()
            )
        return report

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Give the tracer back to `heapscope run`'s recording of this process, if any."""
        suspended, self._suspended = self._suspended, None
        _follow.resume(suspended)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keep the tests with the highest peaks (and note those not measured)."""
        plain = getattr(report, "heapscope", None)
        if report.when != "call" or plain is None:
            return
        if isinstance(plain, str):
            self._unmeasured.append((report.nodeid, plain))
            return
        measurement = Measurement.from_plain(plain)
        entry = (measurement.peak, next(self._order), report.nodeid, measurement)
        if len(self._highest) < self.top:
            heapq.heappush(self._highest, entry)
        else:
            heapq.heappushpop(self._highest, entry)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Print the tests with the highest peak and their top lines."""
        tests = sorted(self._highest, key=lambda entry: (-entry[0], entry[1]))
        terminalreporter.write_sep("=", f"heapscope: the {self.top} tests with the highest peak")
        if not tests:
            terminalreporter.write_line("no test was measured")
        for peak, _, nodeid, measurement in tests:
            terminalreporter.write_line(
                f"{format_size(peak):>10} peak  {format_size(measurement.kept):>10} kept  {nodeid}"
            )
            if measurement.peak_lines:
                terminalreporter.write_line(
                    format_lines(measurement.peak_lines, indent=" " * 8, base=self.base)
                )
        for nodeid, reason in self._unmeasured:
            terminalreporter.write_line(f"not measured: {nodeid}: {reason}")
