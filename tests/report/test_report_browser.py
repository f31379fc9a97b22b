"""The HTML report in real headless Chromium (Debian's `chromium`, driven by playwright).

Install both with scripts/install-browser.sh; without them these tests skip.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from heapscope import _native

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "chromium is not installed (run scripts/install-browser.sh)", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (run scripts/install-browser.sh)"
)


class Page:
    """A loaded report page with what it logged, requested and tried to pop up."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def open_report(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """Write a report page to disk, open it from file://, wait until it has rendered."""
    pages: list[Any] = []

    def _open(html: str, name: str = "report.html") -> Page:
        path = tmp_path / name
        path.write_text(html, encoding="utf-8")
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        pages.append(context)
        p = Page(page)
        page.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: p.errors.append(str(e)))
        page.on("request", lambda r: p.requests.append(r.url))

        def on_dialog(d: Any) -> None:
            p.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=10_000)
        p.requests = [u for u in p.requests if u != path.as_uri()]
        return p

    yield _open
    for c in pages:
        c.close()


def flame_labels(p: Page) -> list[str]:
    """Text of every bar label in the flame graph."""
    labels: list[str] = p.page.locator("#flame text").all_text_contents()
    return labels


def test_workload_report_renders_cleanly(open_report: Any, workload_profile: object) -> None:
    p = open_report(_native.render_html(workload_profile))
    assert p.errors == []
    assert p.requests == []
    labels = " ".join(flame_labels(p))
    for name in ("main", "load_records", "render_rows", "make_blob"):
        assert name in labels
    assert "render_rows" in p.page.locator("#by-line").inner_text()
    assert p.page.locator("#timeline .peak-dot").count() == 1
    assert "workload.py" in p.page.locator("#meta").inner_text()


def test_click_zooms_and_reset_returns(open_report: Any, workload_profile: object) -> None:
    p = open_report(_native.render_html(workload_profile))
    flame = p.page.locator("#flame")
    assert flame.get_attribute("data-zoom") == "0"
    target = p.page.locator("#flame g:has(text:text-matches('^render_rows'))").first
    target.click()
    zoom = flame.get_attribute("data-zoom")
    assert zoom != "0"
    assert "render_rows" in p.page.locator("#breadcrumb").inner_text()
    # The zoomed frame now spans the full width.
    box = p.page.locator(f"#flame g[data-i='{zoom}'] rect").bounding_box()
    wrap = p.page.locator("#flame-wrap").bounding_box()
    assert box is not None and wrap is not None and box["width"] > 0.95 * (wrap["width"] - 2)
    p.page.locator("#zoom-reset").click()
    assert flame.get_attribute("data-zoom") == "0"
    assert p.errors == []


def test_hover_search_switch_and_sort(open_report: Any, workload_profile: object) -> None:
    p = open_report(_native.render_html(workload_profile))
    p.page.locator("#flame g:has(text:text-matches('^make_blob'))").first.hover()
    tip = p.page.locator("#tooltip")
    assert tip.is_visible()
    assert "make_blob" in tip.inner_text() and "workload.py:" in tip.inner_text()
    p.page.fill("#search", "render_rows")
    assert p.page.locator("#flame g.match").count() >= 1
    assert "match" in p.page.locator("#search-result").inner_text()
    p.page.fill("#search", "")
    p.page.locator("#view-switch button[data-view='end']").click()
    assert p.page.get_attribute("body", "data-view") == "end"
    assert "build_in" in " ".join(flame_labels(p))
    assert "build_index" in p.page.locator("#by-line").inner_text()
    header = p.page.locator("#by-line th", has_text="Function")
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert p.errors == []


def test_hostile_names_are_inert(
    open_report: Any, hostile_profile: object, hostile_names: tuple[str, str]
) -> None:
    p = open_report(_native.render_html(hostile_profile))
    hostile_file, hostile_func = hostile_names
    page = p.page
    page.locator("#view-switch button[data-view='total']").click()
    page.locator(f"#flame g:has(text:text-matches('^{hostile_func[:7]}'))").first.hover()
    page.fill("#search", "alert")
    page.wait_for_timeout(200)
    assert p.dialogs == []
    assert p.errors == []
    assert p.requests == []
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 2
    assert hostile_file in page.locator("#by-file").inner_text()
    assert hostile_func in page.locator("#by-line").inner_text()
    assert hostile_file in page.locator("#title-command").inner_text()


def test_the_report_of_a_measured_block_renders(open_report: Any) -> None:
    # What the %%heapscope magic embeds: a profile taken from the running tracer (no timeline).
    from heapscope import tracemalloc

    if tracemalloc.is_tracing():
        pytest.skip("the tracer is already running")
    tracemalloc.start(8)
    try:
        tracemalloc.reset_peak()
        kept = [str(i) * 3 for i in range(20_000)]
        profile = _native._profile_of_tracer(["%%heapscope"], 5)
    finally:
        tracemalloc.stop()
    p = open_report(_native.render_html(profile))
    assert p.errors == []
    assert p.requests == []
    assert "test_the_report_of_a_measured_block_renders" in " ".join(flame_labels(p))
    assert len(kept) == 20_000


def test_a_script_with_a_hostile_name_shows_as_text(
    open_report: Any, hostile_capture: Path, hostile_names: tuple[str, str]
) -> None:
    # A real `heapscope run` of `<img src=x onerror=alert(1)>.py`.
    p = open_report(_native.render_html(_native.load_capture(str(hostile_capture))))
    page = p.page
    page.locator("#flame g:has(text:text-matches('^grow'))").first.hover()
    page.wait_for_timeout(200)
    assert p.dialogs == []
    assert p.errors == []
    assert p.requests == []
    assert page.locator("img").count() == 0
    assert hostile_names[0] in page.locator("#by-file").inner_text()
    assert hostile_names[0] in page.locator("#title-command").inner_text()


def balanced_profile(n_stacks: int, base: int = 4, depth: int = 9) -> object:
    """n distinct stacks forming a balanced tree (base-`base` digits of the stack number):
    the worst case for pruning, thousands of frames of similar size."""
    frames = [
        [f"/app/level{d}.py", f"step{d}_{k}", 10 + k] for d in range(depth) for k in range(base)
    ]
    stacks = []
    for i in range(n_stacks):
        digits = [(i // base**d) % base for d in range(depth)]
        stacks.append({"frames": [d * base + digits[d] for d in reversed(range(depth))]})
    stats = [[i, 1000 + i % 7, 1] for i in range(n_stacks)]
    data = {"frames": frames, "stacks": stacks, "at_peak": stats, "at_end": stats, "total": stats}
    return _native._profile_from_json(json.dumps(data))


@pytest.mark.parametrize("shape", ["synthetic", "balanced"])
def test_hundred_thousand_stacks_load_fast(open_report: Any, shape: str) -> None:
    if shape == "synthetic":
        profile = _native._synthetic_profile(100_000)
    else:
        profile = balanced_profile(100_000)
    t0 = time.perf_counter()
    html = _native.render_html(profile)
    render_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    p = open_report(html)
    load_s = time.perf_counter() - t1
    script_ms = int(p.page.get_attribute("body", "data-render-ms") or "0")
    drawn = p.page.locator("#flame").get_attribute("data-drawn")
    size_mb = len(html) / 1e6
    print(
        f"100k stacks ({shape}): render {render_s:.2f} s, {size_mb:.2f} MB, "
        f"browser load {load_s:.2f} s, script {script_ms} ms, {drawn} bars drawn"
    )
    assert load_s < 2.0
    assert p.errors == []
    p.page.locator("#flame g[data-i]").nth(3).click()
    assert p.page.locator("#flame").get_attribute("data-zoom") != "0"
    data = json.loads(p.page.locator("#heapscope-data").text_content() or "{}")
    assert len(data["views"]["peak"]["tree"]["f"]) <= 20_000


def test_process_selector_shows_one_process(
    open_report: Any, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    import subprocess
    import sys

    (tmp_path / "tree.py").write_text(
        "import multiprocessing as mp\n"
        "def only_in_child():\n"
        "    return bytearray(3 * 1024 * 1024)\n"
        "def child():\n"
        "    kept = only_in_child()\n"
        "def only_in_root():\n"
        "    return bytearray(1024 * 1024)\n"
        "if __name__ == '__main__':\n"
        "    root = only_in_root()\n"
        "    p = mp.get_context('spawn').Process(target=child)\n"
        "    p.start()\n"
        "    p.join()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "heapscope", "run", "-o", "tree.hsc", "tree.py"],
        cwd=tmp_path,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    profile = _native.load_capture(tmp_path / "tree.hsc")
    p = open_report(_native.render_html(profile), "tree.html")
    page = p.page
    assert page.locator("#processes-section").is_visible()
    assert page.locator("#processes tbody tr").count() >= 2
    labels = " ".join(flame_labels(p))
    assert "only_in_child" in labels and "only_in_root" in labels
    merged_peak = page.locator("#timeline .peak-label").text_content()
    # The merged timeline draws each process's own memory too.
    assert page.locator("#timeline .proc-line").count() >= 2
    # Pick the child: its own views and timeline.
    processes = json.loads(_native.render_report(profile, json=True))["meta"]["processes"]
    child = next(i for i, q in enumerate(processes) if "spawn_main" in " ".join(q["command"]))
    page.select_option("#process-select", value=str(child))
    labels = " ".join(flame_labels(p))
    assert "only_in_child" in labels and "only_in_root" not in labels
    assert page.locator("#timeline .peak-label").text_content() != merged_peak
    assert page.locator("#timeline .proc-line").count() == 0
    assert "only_in_child" in page.locator("#by-line").inner_text()
    page.select_option("#process-select", index=0)
    assert "only_in_root" in " ".join(flame_labels(p))
    assert p.errors == []
