"""``heapscope run``: run a Python program in-process under the profiler."""

from __future__ import annotations

# Only what the interpreter has loaded at start-up, or what `argparse` needs anyway: a module
# imported here is in `sys.modules` when the program starts, so the program's own import of it
# would not be traced (pathlib, zipfile, runpy and traceback are imported where needed).
import _frozen_importlib_external
import argparse
import builtins
import gc
import io
import os
import sys
import types
import zipimport

from heapscope import _follow, _native
from heapscope._capture import DEFAULT_TRACE_LIMIT, FLUSH_INTERVAL, CaptureSession
from heapscope.errors import HeapscopeError

TYPE_CHECKING = False  # not `typing`'s: see above
if TYPE_CHECKING:
    from types import TracebackType

_SIGINT = 2  # signal.SIGINT, without importing `signal` (enum) before the program
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``run``'s options."""
    parser.add_argument("-o", "--output", metavar="FILE", help="capture file to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing capture")
    parser.add_argument(
        "--trace-limit",
        type=int,
        default=DEFAULT_TRACE_LIMIT,
        metavar="N",
        help=f"frames kept per stack (default {DEFAULT_TRACE_LIMIT})",
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=None,
        metavar="BYTES",
        help="sample one block per BYTES allocated on average, with sizes scaled to unbiased "
        "estimates (production mode; e.g. 524288). Default: record every block",
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="also record what native code (C extensions, ctypes libraries, C threads) takes "
        "with malloc and mmap, with its C frames",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="watch memory in a terminal UI while the program runs (its output goes to "
        "FILE.out beside the capture; q closes the UI, the program runs on)",
    )
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=FLUSH_INTERVAL,
        metavar="SECONDS",
        help=f"seconds between two writes of the capture (default {FLUSH_INTERVAL})",
    )
    parser.add_argument(
        "--no-follow",
        action="store_true",
        help="record this process only (by default every child Python process is recorded "
        "too: fork, multiprocessing, subprocess, exec)",
    )
    parser.add_argument(
        "-m",
        dest="module",
        nargs=argparse.REMAINDER,
        metavar="MODULE [args...]",
        help="run a library module as a script (the rest of the line is its arguments)",
    )
    parser.add_argument(
        "program", nargs=argparse.REMAINDER, metavar="script.py [args...]", help="the program"
    )


def _default_output(name: str) -> str:
    return f"heapscope-{name}.{os.getpid()}.hsc"


def execute(args: argparse.Namespace) -> int:
    """Run the program under a capture; return its exit status."""
    argv: list[str] = list(args.program)
    module: str | None = None
    if args.module is not None:
        if not args.module or argv:
            raise ValueError("-m needs a module name, and no script besides it")
        module, argv = args.module[0], list(args.module[1:])
    if module is None:
        if not argv:
            raise ValueError("nothing to run: give a script or -m MODULE")
        if not os.path.exists(argv[0]):
            raise FileNotFoundError(2, "No such file or directory", argv[0])
        name = os.path.splitext(os.path.basename(os.path.normpath(argv[0])))[0]
        command = argv
    else:
        name = module
        command = ["-m", module, *argv]
    output = args.output if args.output else _default_output(name)
    _check_output(output, None if module is not None else argv[0])
    if os.path.exists(output) and not args.force:
        raise HeapscopeError(f"{output} already exists (use --force to overwrite it)")
    if args.live:
        from pathlib import Path

        from heapscope.cli._live_run import run_live

        return run_live(
            Path(output).resolve(),
            command,
            trace_limit=args.trace_limit,
            sample_rate=args.sample_rate,
            native=args.native,
        )
    # Compiled before recording starts, as the interpreter compiles a script before running it.
    try:
        code, main = _compile_script(argv[0]) if module is None else (None, None)
    except SyntaxError as exc:
        import traceback

        traceback.print_exception(type(exc), exc, None)
        return 1
    session = CaptureSession(
        output,
        command=command,
        trace_limit=args.trace_limit,
        force=True,
        sample_rate=args.sample_rate,
        flush_interval=args.flush_interval,
        native=args.native,
    )
    session.check()  # before anything is made on disk
    if code is None:
        # A module, a directory or a zip file: runpy runs it, imported before recording (as
        # `python -m` has it loaded before the program starts).
        import runpy
    follow = _prepare_children_dir(output, args)

    saved_argv, saved_path0 = sys.argv, sys.path[0] if sys.path else None
    # Computed before recording: the runner's own allocations are not the program's.
    path0 = os.path.dirname(os.path.realpath(argv[0])) if module is None else os.getcwd()
    program_argv = argv if module is None else [module, *argv]
    if follow is not None:
        # Before recording starts: setting variables allocates, and that is not the program's.
        os.environ.update(follow.environ(os.environ))
    _follow.install(session, follow, child=False)  # before recording, as the line above
    root_pid = os.getpid()  # before recording: the int it makes lives to the end
    traced = _start_session(session, output, native=args.native)
    if traced:
        # heapscope's own start-up (this runner, the session's thread) leaves garbage and
        # moves the collector's counters: collected once tracing runs (its frees are of
        # untraced blocks, and what the collection allocates is not traced), so the program's
        # collections happen where they would from a clean start.
        _native._set_thread_ignored(True)
        gc.collect()
        _native._set_thread_ignored(False)
    status = 0
    interrupted = False
    try:
        sys.argv = program_argv
        sys.path[0] = path0
        # The program runs right here, not in a helper, and this frame is the floor of the
        # tracer's stack walks: the runner's frames below it are not walked at each allocation.
        if traced:
            _native._set_stack_floor(True)
        if code is not None and main is not None:
            # Like the interpreter, leave the program's module as __main__ (atexit, pickle).
            sys.modules["__main__"] = main
            exec(code, main.__dict__)
        elif module is None:
            runpy.run_path(os.path.abspath(argv[0]), run_name="__main__")
        else:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        _program_done(traced)
        status = _exit_status(exc.code)
    except BaseException as exc:
        _program_done(traced)
        _print_user_traceback(exc)
        status = 1
        if isinstance(exc, KeyboardInterrupt):
            # Python dies by SIGINT then, once finalized (`exit_sigint`), and so does this
            # process (130 where that cannot be arranged, a shell's code for it).
            status = 130
            interrupted = _native.die_by_signal_at_exit(_SIGINT)
    finally:
        _program_done(traced)
        sys.argv = saved_argv
        if saved_path0 is not None and sys.path:
            sys.path[0] = saved_path0
        _flush_stdout()
        exit_status = ("signal", _SIGINT) if interrupted else ("exit", status & 0xFF)
        if not traced:
            pass
        elif os.getpid() == root_pid:
            path = session.stop(exit_status)
            _follow.end(exit_status)  # a stream that replaced the root's (heapscope.Tracker)
            _report_written(path, session.size, follow)
        else:
            # A child forked by the program (without exec) that ran on to the end.
            _follow.end(exit_status)
    return status


def _flush_stdout() -> None:
    """Flush the program's standard output, as the interpreter does at exit: a program may
    have closed it or set it to None, and then there is nothing to flush."""
    try:
        stdout = sys.stdout
        if stdout is not None:
            stdout.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _program_done(traced: bool) -> None:
    """The program returned or raised: from here on this thread runs heapscope (the exit
    status, the traceback print, stopping the capture), whose allocations are not the
    program's. Before the runner's frame returns, as its memory is then reused. Idempotent."""
    if traced:
        _native._set_stack_floor(False)
        _native._set_thread_ignored(True)


def _start_session(session: CaptureSession, output: str, *, native: bool) -> bool:
    """Start recording; with ``--native``, a failure to set up the native hooks is one
    message on stderr and the program runs untraced (False)."""
    try:
        session.start()
    except HeapscopeError as exc:
        if not native:
            raise
        sys.stderr.write(f"heapscope: error: {exc}; the program runs untraced\n")
        if os.path.exists(output):
            os.unlink(output)
        return False
    return True


def _check_output(output: str, script: str | None) -> None:
    """Refuse, before anything runs, an output that cannot be a capture file: a directory, the
    script being profiled (``--force`` would overwrite it), or a place no file can be made."""
    if output == "-":
        raise HeapscopeError("a capture is a file, not standard output: give its path with -o")
    if os.path.isdir(output):
        raise HeapscopeError(f"{output} is a directory: give the capture file's path")
    if script is not None and os.path.exists(output) and os.path.samefile(output, script):
        raise HeapscopeError(f"{output} is the script to profile: give another capture path")
    parent = os.path.dirname(os.path.realpath(output))
    if not os.path.isdir(parent):
        raise HeapscopeError(f"cannot write {output}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HeapscopeError(f"cannot write {output}: {parent} is not writable")


def _prepare_children_dir(output: str, args: argparse.Namespace) -> _follow.FollowConfig | None:
    """Create (or, with --force, empty) ``OUT.hsc.d`` for the streams of child processes;
    None with --no-follow, after emptying an old one (the reader would merge its streams)."""
    directory = os.path.realpath(_follow.children_dir(output))
    if os.path.exists(directory):
        if not args.force:
            raise HeapscopeError(f"{directory} already exists (use --force to overwrite it)")
        for entry in os.scandir(directory):
            if entry.name.endswith((".hsc", ".untraced")) and entry.is_file():
                os.unlink(entry.path)
        if args.no_follow:
            try:
                os.rmdir(directory)
            except OSError as exc:
                raise HeapscopeError(
                    f"cannot remove {directory} (an older run's child processes): {exc.strerror}"
                ) from None
    if args.no_follow:
        return None
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise HeapscopeError(
            f"cannot create {directory} (child processes' captures): {exc.strerror}"
        ) from None
    return _follow.FollowConfig(directory, args.trace_limit, args.sample_rate, args.native)


def _report_written(path: str, size: int, follow: _follow.FollowConfig | None) -> None:
    children: list[str] = []
    directory = follow.capture_dir if follow is not None else None
    if directory is not None and os.path.isdir(directory):
        names = os.listdir(directory)
        children = [os.path.join(directory, n) for n in names if n.endswith(".hsc")]
        if not names:
            os.rmdir(directory)  # no child: the capture is the one file
    if children:
        total = size + sum(os.path.getsize(p) for p in children)
        print(
            f"heapscope: capture written to {path} and {len(children)} child process "
            f"stream(s) in {directory} ({total} bytes)",
            file=sys.stderr,
        )
    else:
        print(f"heapscope: capture written to {path} ({size} bytes)", file=sys.stderr)


def _compile_script(script: str) -> tuple[types.CodeType | None, types.ModuleType | None]:
    """Compile a script as ``python script.py`` does (``__file__`` absolute); ``(None, None)``
    for a directory or zip file, which runpy runs."""
    path = os.path.abspath(script)
    if os.path.isdir(path) or _is_zip(path):
        return None, None
    with io.open_code(path) as f:
        source = f.read()
    code = compile(source, path, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=path,
        __builtins__=builtins,
        # importlib.machinery's class, from the frozen module the interpreter starts with.
        __loader__=_frozen_importlib_external.SourceFileLoader("__main__", path),
        __cached__=None,
        __package__=None,
        __spec__=None,
    )
    return code, main


def _is_zip(path: str) -> bool:
    """A zip application, as the interpreter tells one (the importer it would run it with)."""
    try:
        zipimport.zipimporter(path)
    except (zipimport.ZipImportError, OSError):
        return False
    return True


def _exit_status(code: object) -> int:
    """What the interpreter would exit with for ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_user_traceback(exc: BaseException) -> None:
    """Print the traceback as Python would, without heapscope's and runpy's frames."""
    import runpy
    import traceback

    ours = (_PACKAGE_DIR, runpy.__file__ or "<frozen runpy>", "<frozen runpy>")
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(ours):
        tb = tb.tb_next
    sys.stderr.flush()
    if tb is None and isinstance(exc, ImportError):
        # runpy's own failure, no frame of the program (a directory or zip file without
        # __main__, no such module): one line, as python prints it.
        print(f"{sys.executable}: {exc}", file=sys.stderr)
        return
    try:
        traceback.print_exception(type(exc), exc, tb)
    except Exception:
        # 3.15's traceback module looks for an incompatible extension module behind an
        # ImportError by importing again, which can fail in turn (numpy built for another
        # version): the interpreter's own display falls back to its C printer, as python does.
        sys.__excepthook__(type(exc), exc.with_traceback(tb), tb)
