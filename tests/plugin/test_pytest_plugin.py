"""heapscope.pytest_plugin, run through pytester (in process, and in subprocesses for xdist)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from integration._helpers import heapscope
from integration._native_build import build_extension, native_env

from .conftest import PLUGIN, skip_if_traced

pytest_plugins = ["pytester"]

LIMITED = """
import gc
import pytest

KEEP = []

@pytest.mark.limit_memory("1 MB")
def test_keeps_too_much():
    KEEP.append(bytearray(3_000_000))

@pytest.mark.limit_memory("1 MB")
def test_peaks_too_high():
    tmp = bytearray(3_000_000)
    del tmp

@pytest.mark.limit_memory("10 MB")
def test_under_the_limit():
    tmp = bytearray(1_000_000)
    del tmp

@pytest.mark.limit_leaks("1 MB")
def test_leaks():
    KEEP.append([bytes(1000) for _ in range(3000)])

@pytest.mark.limit_leaks("100 KB")
def test_frees_what_it_allocates():
    data = [bytes(1000) for _ in range(3000)]
    cycle = [data]
    cycle.append(cycle)  # freed only by gc.collect()
    del data, cycle

@pytest.mark.limit_memory("1 KB")
def test_fails_on_its_own():
    tmp = bytearray(3_000_000)
    assert tmp is None
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    if "--heapscope" in args:
        skip_if_traced()
    return pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", *args)


def test_markers_do_nothing_without_the_flag(isolated_pytester: pytest.Pytester) -> None:
    isolated_pytester.makepyfile(
        LIMITED
        + """
@pytest.mark.limit_memory("12 parsecs")
def test_bad_marker_is_ignored():
    pass
"""
    )
    result = run(isolated_pytester, "--strict-markers")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*test_fails_on_its_own*"])
    result.stdout.no_fnmatch_line("*heapscope*")


def test_without_the_flag_nothing_is_imported_or_registered(
    isolated_pytester: pytest.Pytester,
) -> None:
    isolated_pytester.makepyfile(
        """
def test_inert(pytestconfig):
    assert pytestconfig.pluginmanager.get_plugin("heapscope-tracing") is None
    markers = pytestconfig.getini("markers")
    assert any(m.startswith("limit_memory(size):") for m in markers)
    assert any(m.startswith("limit_leaks(size):") for m in markers)
"""
    )
    run(isolated_pytester, "--strict-markers").assert_outcomes(passed=1)


def test_without_the_flag_the_tracer_is_not_even_imported(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    code = (
        "import sys, pytest\n"
        "pytest.main(['-p', 'heapscope.pytest_plugin', '--co', '-q', '--strict-markers'])\n"
        "assert 'heapscope.pytest_plugin' in sys.modules\n"
        "assert 'heapscope.tracemalloc' not in sys.modules, 'tracer imported'\n"
        "assert 'heapscope._pytest_tracing' not in sys.modules, 'plugin body imported'\n"
    )
    env = {**subprocess_env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    (tmp_path / "test_empty.py").write_text("def test_nothing():\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_limits_with_the_flag(isolated_pytester: pytest.Pytester) -> None:
    isolated_pytester.makepyfile(test_limits=LIMITED)
    result = run(isolated_pytester, "--heapscope", "--strict-markers")
    result.assert_outcomes(passed=2, failed=4)
    outcomes = {
        match[1]: match[0]
        for match in re.findall(r"^(PASSED|FAILED) \S+::(\w+)", result.stdout.str(), re.M)
    }
    assert outcomes == {
        "test_keeps_too_much": "FAILED",
        "test_peaks_too_high": "FAILED",
        "test_leaks": "FAILED",
        "test_fails_on_its_own": "FAILED",
    }
    result.stdout.fnmatch_lines(
        [
            "*_ test_keeps_too_much _*",
            "heapscope: the test's peak traced memory 2.9 MiB (3,0*,* bytes) exceeds "
            "limit_memory('1 MB') = 1,000,000 bytes.",
            "Top allocating lines*",
            "*2.9 MiB*blocks*test_limits.py:8",
            "*_ test_peaks_too_high _*",
            "heapscope: the test's peak traced memory 2.9 MiB*exceeds limit_memory('1 MB')*",
            "*_ test_leaks _*",
            "heapscope: the test leaked 3.0 MiB*more than limit_leaks('1 MB') = 1,000,000 bytes.",
            "Leaking lines:",
            "*3.0 MiB*blocks*test_limits.py:22",
        ]
    )
    # A test failing on its own shows its own failure, not a memory one.
    result.stdout.fnmatch_lines(["*_ test_fails_on_its_own _*", "*assert tmp is None*"])
    assert len([line for line in result.stdout.lines if line.startswith("heapscope:")]) == 3


NUMPY_LIMITED = """
import numpy as np
import pytest

@pytest.mark.limit_memory("1 MB")
def test_numpy_peak():
    tmp = np.zeros(500_000)
    del tmp
"""


def test_numpy_buffers_count_against_the_limits(isolated_pytester: pytest.Pytester) -> None:
    """numpy reports its buffers through PyTraceMalloc_Track: the plugin counts them."""
    pytest.importorskip("numpy")
    isolated_pytester.makepyfile(test_np=NUMPY_LIMITED)
    result = run(isolated_pytester, "--heapscope")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "heapscope: the test's peak traced memory 3.8 MiB*exceeds limit_memory('1 MB')*",
            "Top allocating lines*",
            "*3.8 MiB*blocks*test_np.py:6",
        ]
    )


NATIVE_LIMITED = """
import nativeext
import pytest

@pytest.mark.limit_memory("1 MB")
def test_native_peak():
    nativeext.take(5_000_000, 0)
"""


def test_native_memory_counts_with_heapscope_native(
    isolated_pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A C extension's malloc is invisible to the tracer unless --heapscope-native is given;
    then it counts against the limit, at the C line that called malloc."""
    skip_if_traced()
    build_extension(tmp_path)
    monkeypatch.setenv("PYTHONPATH", native_env(tmp_path)["PYTHONPATH"])
    isolated_pytester.makepyfile(test_nat=NATIVE_LIMITED)
    # In subprocesses: --native patches every loaded object's imports of malloc.
    without = isolated_pytester.runpytest_subprocess(
        *PLUGIN, "-p", "no:cacheprovider", "--heapscope"
    )
    without.assert_outcomes(passed=1)
    result = isolated_pytester.runpytest_subprocess(
        *PLUGIN, "-p", "no:cacheprovider", "--heapscope", "--heapscope-native"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "heapscope: the test's peak traced memory 4.8 MiB*exceeds limit_memory('1 MB')*",
            "Top allocating lines*",
            "*4.8 MiB*1 block*nativeext.c:*",
        ]
    )


def test_bad_markers_are_setup_errors(isolated_pytester: pytest.Pytester) -> None:
    isolated_pytester.makepyfile(
        """
import pytest

@pytest.mark.limit_memory()
def test_no_argument(): pass

@pytest.mark.limit_memory(1.5)
def test_wrong_type(): pass

@pytest.mark.limit_leaks("12 parsecs")
def test_unknown_unit(): pass

@pytest.mark.limit_memory("-1 MB")
def test_negative(): pass

@pytest.mark.limit_leaks("1 MB", "2 MB")
def test_two_arguments(): pass

@pytest.mark.limit_memory(size="1 MB")
def test_keyword(): pass

@pytest.mark.limit_memory("1 MB")
def test_good(): pass
"""
    )
    result = run(isolated_pytester, "--heapscope")
    result.assert_outcomes(passed=1, errors=6)
    result.stdout.fnmatch_lines_random(
        [
            "heapscope: @pytest.mark.limit_memory takes exactly one size, such as "
            "@pytest.mark.limit_memory('24 MB'), not @pytest.mark.limit_memory()",
            "heapscope: @pytest.mark.limit_memory(1.5): a size must be a string such as "
            "'24 MB' or an int number of bytes, not float (1.5)",
            "heapscope: @pytest.mark.limit_leaks('12 parsecs'): '12 parsecs' has an unknown "
            "unit 'parsecs': use one of B, KB, MB, GB, KiB, MiB, GiB",
            "heapscope: @pytest.mark.limit_memory('-1 MB'): a size cannot be negative*",
            "*not @pytest.mark.limit_leaks('1 MB', '2 MB')",
            "*not @pytest.mark.limit_memory(size='1 MB')",
        ]
    )
    output = result.stdout.str()
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    assert "During handling" not in output


def test_summary_lists_the_highest_peaks(isolated_pytester: pytest.Pytester) -> None:
    isolated_pytester.makepyfile(
        """
KEEP = []

def helper(n):
    return bytearray(n)

def test_small():
    KEEP.append(helper(100_000))

def test_big():
    KEEP.append(helper(5_000_000))

def test_medium():
    KEEP.append(helper(2_000_000))
"""
    )
    result = run(isolated_pytester, "--heapscope", "--heapscope-top", "2")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= heapscope: the 2 tests with the highest peak =*",
            "*4.8 MiB peak*4.8 MiB kept*test_summary_lists_the_highest_peaks.py::test_big",
            "*4.8 MiB*blocks*test_summary_lists_the_highest_peaks.py:4",
            "*1.9 MiB peak*1.9 MiB kept*::test_medium",
            "*1.9 MiB*blocks*test_summary_lists_the_highest_peaks.py:4",
        ]
    )
    result.stdout.no_fnmatch_line("*::test_small*")


def test_traceback_limit_shows_callers(isolated_pytester: pytest.Pytester) -> None:
    isolated_pytester.makepyfile(
        """
import pytest

KEEP = []

def helper(n):
    return bytearray(n)

@pytest.mark.limit_leaks("1 MB")
def test_leaks_through_a_helper():
    KEEP.append(helper(2_000_000))
"""
    )
    result = run(isolated_pytester, "--heapscope", "--heapscope-traceback-limit", "2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "Leaking lines:",
            "*1.9 MiB*blocks*test_traceback_limit_shows_callers.py:6",
            "*called from test_traceback_limit_shows_callers.py:10",
        ]
    )


@pytest.mark.parametrize("option", ["--heapscope-top", "--heapscope-traceback-limit"])
@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_option_values_are_usage_errors(
    isolated_pytester: pytest.Pytester, option: str, value: str
) -> None:
    result = run(isolated_pytester, "--heapscope", f"{option}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*argument {option}: expected a positive integer, got*"])


def test_a_traceback_limit_over_the_tracers_is_a_usage_error(
    isolated_pytester: pytest.Pytester,
) -> None:
    result = run(isolated_pytester, "--heapscope", "--heapscope-traceback-limit=70000")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected a traceback limit from 1 to 65535, got 70000*"])


def test_a_tracer_started_by_someone_else_is_left_alone(
    isolated_pytester: pytest.Pytester,
) -> None:
    isolated_pytester.makepyfile(
        """
import pytest
from heapscope import tracemalloc

@pytest.fixture
def tracing():
    tracemalloc.start()
    yield
    assert tracemalloc.is_tracing()
    tracemalloc.stop()

def test_traces_for_itself(tracing):
    pass

@pytest.mark.limit_memory("1 GB")
def test_limited_but_traces_for_itself(tracing):
    pass

@pytest.mark.limit_memory("1 GB")
def test_stops_the_tracer():
    tracemalloc.stop()
"""
    )
    result = run(isolated_pytester, "--heapscope")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "heapscope: cannot check the memory limits: heapscope's tracer was already "
            "running when the test started (*",
            "heapscope: cannot check the memory limits: the test stopped heapscope's tracer",
            "not measured: *::test_traces_for_itself: heapscope's tracer was already running*",
        ]
    )


def test_xdist_workers_measure_their_tests(
    isolated_pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    subprocess_env: dict[str, str],
) -> None:
    monkeypatch.setenv("PYTHONPATH", subprocess_env["PYTHONPATH"])
    isolated_pytester.makepyfile(test_limits=LIMITED)
    result = isolated_pytester.runpytest_subprocess(
        *PLUGIN, "-p", "xdist", "-p", "no:cacheprovider", "-n", "2", "--heapscope"
    )
    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines(["*created: 2/2 workers*"])
    result.stdout.fnmatch_lines_random(
        [
            "heapscope: the test's peak traced memory 2.9 MiB*exceeds limit_memory('1 MB')*",
            "heapscope: the test leaked 3.0 MiB*",
            "*= heapscope: the 5 tests with the highest peak =*",
            "*peak*kept*test_limits.py::test_leaks",
            "*3.0 MiB*blocks*test_limits.py:22",
        ]
    )


def test_pytest_under_heapscope_run_with_warnings_as_errors(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """`heapscope run -m pytest`: heapscope is imported before pytest loads its plugin (entry
    point), and pytest warns about packages it cannot rewrite; a project that turns warnings
    into errors must still run (heapscope opts out of rewriting)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    (tmp_path / "test_a.py").write_text("def test_a():\n    assert 1\n")
    proc = heapscope("run", "-o", "r.hsc", "-m", "pytest", "-q", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert "warning" not in proc.stdout
