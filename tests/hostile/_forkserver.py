"""Run many ``yolospan`` command lines, each in its own process with time and memory limits.

Started once as a subprocess by the hostile-input tests: it imports torch and yolospan (the
seconds a fresh interpreter would spend on each case), then forks one child per case. Each child
is a separate process with the case's folder as working directory, the case's environment only,
stdin from /dev/null, stdout and stderr to files, ``RLIMIT_AS`` (address space: the parent's plus
the case's budget) and ``RLIMIT_CPU`` set, and calls the console script's entry function
``yolospan.cli.main(argv)`` as ``yolospan ARGV...`` would; an exception escaping it is printed as
the interpreter would (a traceback) and exits 1. A child still running at its wall-clock limit is
killed. Up to ``--jobs`` children run at once.

Input on stdin, a JSON list of cases: ``{"id", "argv", "cwd", "env", "out", "err", "timeout_s",
"memory_mb"}``. Output on stdout, a JSON list: ``{"id", "status", "signal", "timed_out",
"wall_s"}``, where ``status`` is the exit status (None when killed by a signal).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import sys
import time
import traceback
from typing import Any


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _child(case: dict[str, Any]) -> None:
    """In the forked child: never returns."""
    code = 1
    try:
        os.setsid()  # its own process group: a kill at the limit takes any helper it started too
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(case["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(case["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.chdir(case["cwd"])
        os.environ.clear()
        os.environ.update(case["env"])
        budget = int(case["memory_mb"]) << 20
        limit = _address_space() + budget
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        cpu = int(case["timeout_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import torch

        torch.set_num_threads(1)
        from yolospan.cli import main

        try:
            code = main(case["argv"])
        except SystemExit as exit_:  # argparse's --help and usage errors
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    options = parser.parse_args()
    cases: list[dict[str, Any]] = json.load(sys.stdin)
    # What every case would otherwise import on its own: torch and all of yolospan's commands.
    import torch  # noqa: F401

    import yolospan.cli
    import yolospan.data
    import yolospan.delivery.sending
    import yolospan.export.tracefile
    import yolospan.otel
    import yolospan.testing
    import yolospan.train
    import yolospan.yolo

    yolospan.cli.build_parser()

    pending = list(cases)
    running: dict[int, tuple[dict[str, Any], float]] = {}
    results: list[dict[str, Any]] = []
    while pending or running:
        while pending and len(running) < max(options.jobs, 1):
            case = pending.pop(0)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(case)
            running[pid] = (case, time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            now = time.monotonic()
            for child, (case, started) in list(running.items()):
                if now - started > case["timeout_s"]:
                    case["timed_out"] = True
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child, signal.SIGKILL)
            time.sleep(0.01)
            continue
        if pid not in running:
            continue
        case, started = running.pop(pid)
        results.append(
            {
                "id": case["id"],
                "status": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "timed_out": bool(case.get("timed_out")),
                "wall_s": round(time.monotonic() - started, 3),
            }
        )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
