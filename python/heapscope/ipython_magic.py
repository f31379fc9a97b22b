# mypy: disallow-untyped-decorators=False, disallow-untyped-calls=False
# (IPython has no type hints.)
"""The ``%%heapscope`` cell magic for IPython and Jupyter (``%load_ext heapscope``).

``%%heapscope`` runs the cell under ``heapscope.tracemalloc`` and shows the cell's peak traced
memory, what it kept (allocated by the cell and still held after ``gc.collect()``) and the top
lines. Options: ``-n N`` / ``--top N`` rows (default 10), ``--limit N`` frames per allocation
(the traceback limit, default 1). If the tracer is already running (the user started it), the
cell runs unmeasured and the magic says so: it never stops or resets somebody else's tracer.

The result is displayed as a :class:`CellReport`: text in a terminal; in a notebook front end
(``_repr_html_``) the same figures plus heapscope's interactive HTML report of the cell (flame
graph, peak / kept / allocated views); the last one is kept in ``HeapscopeMagics.last_report``.
"""

from __future__ import annotations

import ast
import codeop
import os
import sys
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

import IPython
import traitlets
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from heapscope._measure import Measurement, Measuring, package_pattern
from heapscope._tables import format_lines, html_lines
from heapscope._units import format_size, positive_int, trace_limit

__all__ = ["CellReport", "HeapscopeMagics", "load_ipython_extension"]

ALREADY_TRACING = (
    "heapscope: the tracer is already running (started outside %%heapscope), so this cell "
    "runs without being measured; call heapscope.tracemalloc.stop() to use %%heapscope."
)


# IPython's own allocations while the cell runs (traitlets notifications, the display hook).
_IPYTHON_INTERNALS = (package_pattern(IPython), package_pattern(traitlets), codeop.__file__)
# A Jupyter kernel's own, while the cell runs (output streams, messages), where loaded.
_KERNEL_PACKAGES = ("ipykernel", "zmq", "tornado", "jupyter_client", "comm", "debugpy")


def _internals() -> tuple[str, ...]:
    """The file patterns of IPython's and the kernel's code: not the cell's allocations."""
    loaded = [sys.modules.get(name) for name in _KERNEL_PACKAGES]
    kernel = tuple(package_pattern(m) for m in loaded if getattr(m, "__file__", None))
    return _IPYTHON_INTERNALS + kernel


def _running_cell_number(shell: Any) -> int:
    """The number of the cell whose code calls this magic (``In[N]``). IPython 9 has counted
    the next cell in ``execution_count`` by then, IPython 8 had not: the number is looked up
    by the calling cell's file name, which IPython's compiler maps to it."""
    numbers = getattr(shell.compile, "_filename_map", {})
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        number = numbers.get(frame.f_code.co_filename)
        if isinstance(number, int):
            return number
        frame = frame.f_back
    return int(shell.execution_count)


@dataclass(frozen=True)
class CellReport:
    """What a ``%%heapscope`` cell did; text in a terminal, HTML in a notebook."""

    measurement: Measurement
    raised: bool = False
    #: The tracer's figures for the cell (``heapscope._native.Profile``): the HTML report.
    profile: Any = None

    def _summary(self) -> str:
        m = self.measurement
        ended = " (the cell raised an exception)" if self.raised else ""
        return (
            f"heapscope: peak {format_size(m.peak)}, kept {format_size(m.kept)} "
            f"(allocated by the cell and still held after it){ended}"
        )

    def _sections(self) -> list[tuple[str, tuple[Any, ...]]]:
        m = self.measurement
        return [("Top lines at the peak", m.peak_lines), ("What it kept", m.kept_lines)]

    def __str__(self) -> str:
        parts = [self._summary()]
        for title, lines in self._sections():
            parts += [f"{title}:", format_lines(lines, base=os.getcwd())]
        return "\n".join(parts)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return render_html(self)


def render_html(report: CellReport) -> str:
    """The notebook view of a cell report: the figures and the top lines, then heapscope's
    interactive HTML report of the cell (flame graph of memory at the peak, what it kept, what it
    allocated) in an isolated ``iframe`` (its script and styles stay inside)."""
    import html

    from heapscope import _native

    tables = "".join(html_lines(lines, title) for title, lines in report._sections())
    summary = f"<p>{html.escape(report._summary())}</p>"
    flame = ""
    if report.profile is not None:
        page = html.escape(_native.render_html(report.profile, "peak"), quote=True)
        flame = (
            f'<iframe class="heapscope-report" srcdoc="{page}" sandbox="allow-scripts" '
            'style="width: 100%; height: 720px; border: 1px solid #ccc"></iframe>'
        )
    return f"<div class='heapscope-cell'>{summary}{flame}{tables}</div>"


@magics_class
class HeapscopeMagics(Magics):
    """The ``%%heapscope`` cell magic."""

    last_report: CellReport | None = None

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "the magics are registered with a shell"
        return self.shell

    @magic_arguments()
    @argument("-n", "--top", type=positive_int, default=10, help="rows to show (default 10)")
    @argument(
        "--limit",
        type=trace_limit,
        default=1,
        help="traceback limit: frames stored per allocation (default 1)",
    )
    @argument(
        "--native",
        action="store_true",
        help="also count what native code takes with malloc and mmap (C frames in stacks)",
    )
    @cell_magic
    def heapscope(self, line: str, cell: str) -> Any:
        """Run the cell under heapscope's tracer; show its peak, what it kept, its top lines.

        Returns the value of the cell's last expression, which IPython shows as usual.
        """
        __tracebackhide__ = True  # IPython leaves this frame out of the cell's traceback
        args = parse_argstring(self.heapscope, line)  # bad arguments raise UsageError
        try:
            body, last = self._compile(cell)
        except SyntaxError as exc:
            if "await" in str(exc.msg):
                raise UsageError(
                    "%%heapscope runs the cell as plain code: top-level `await` is not "
                    "supported (wrap it in asyncio.run(...))"
                ) from None
            raise
        measuring = Measuring(
            nframe=args.limit,
            top=args.top,
            exclude=_internals(),
            profile_command=["%%heapscope " + line.strip()],
            native=args.native,
        )
        if not measuring.start():
            print(ALREADY_TRACING, file=sys.stderr)
            return self._run(body, last)
        raised = True
        try:
            value = self._run(body, last)
            raised = False
        finally:
            # The traceback of an exception is formatted by IPython after this, unmeasured.
            measurement = measuring.finish()
            if measurement is None:
                print("heapscope: the cell stopped the tracer; nothing to show", file=sys.stderr)
            else:
                self.last_report = CellReport(measurement, raised=raised, profile=measuring.profile)
                display(self.last_report)
        return value

    def _compile(self, cell: str) -> tuple[CodeType, CodeType | None]:
        """Compile the cell as IPython would (magics, ``!`` lines, AST transformers), before
        tracing starts; the last expression is compiled apart so that its value is shown."""
        shell = self._shell
        source = shell.transform_cell(cell)
        # Cached like IPython's own cells, so that tracebacks show the cell's lines, under the
        # number of the cell running this magic.
        filename = shell.compile.cache(source, _running_cell_number(shell), raw_code=cell)
        tree = shell.transform_ast(shell.compile.ast_parse(source, filename=filename))
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = shell.compile(ast.Expression(tree.body.pop().value), filename, "eval")
        return shell.compile(tree, filename, "exec"), last

    def _run(self, body: CodeType, last: CodeType | None) -> Any:
        __tracebackhide__ = True
        shell = self._shell
        exec(body, shell.user_global_ns, shell.user_ns)
        return None if last is None else eval(last, shell.user_global_ns, shell.user_ns)


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%heapscope`` (called by ``%load_ext heapscope``)."""
    ipython.register_magics(HeapscopeMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Unregister ``%%heapscope`` (called by ``%unload_ext heapscope``)."""
    manager = ipython.magics_manager
    manager.magics["cell"].pop("heapscope", None)
    manager.registry.pop(HeapscopeMagics.__name__, None)
