"""The garbage collector's pauses in the bench's own processes (gunicorn workers, Celery).

    uv run python bench/run.py --only webhook --only lanes --gc-pauses /tmp/gc
    uv run python -m bench.gcpauses /tmp/gc          # the same summary again, from the files

With --gc-pauses DIR, bench/settings.py (loaded by every process the bench starts) adds a
`gc.callbacks` timer: each collection's generation and duration go to DIR/gc.<kind>.<pid>
(kind: web for gunicorn, celery), one line each. The summary gives, per process, its full
(generation 2) collections, which stop it while it holds a request or a batch: how many, the
longest and the total, apart for its first 5 s (start-up, loading) and after (serving).
"""

import gc
import os
import sys
import time
from pathlib import Path

_started: list[float] = []


def install(directory: str) -> None:
    """Times every collection of this process (and of processes forked from it)."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    command = " ".join(sys.argv)
    kind = "web" if "gunicorn" in command else "celery" if "celery" in command else "other"
    installed = time.monotonic()

    def timer(phase: str, info: dict) -> None:
        if phase == "start":
            _started[:] = [time.perf_counter()]
        elif _started:
            pause_ms = (time.perf_counter() - _started[0]) * 1000
            with open(Path(directory) / f"gc.{kind}.{os.getpid()}", "a") as out:
                out.write(f"{info['generation']} {pause_ms:.2f} "
                          f"{time.monotonic() - installed:.1f}\n")

    gc.callbacks.append(timer)


# Collections in a process's first seconds run while it loads (before it serves anything).
START_UP_SECONDS = 5.0


def summary(directory: str) -> dict[str, dict[str, dict]]:
    """{"kind.pid": {"start-up" | "serving": {count, max_ms, total_ms}}}: the process's full
    (generation 2) collections, in its first START_UP_SECONDS or after."""
    out: dict[str, dict[str, dict]] = {}
    for path in sorted(Path(directory).glob("gc.*")):
        spans = {span: {"count": 0, "max_ms": 0.0, "total_ms": 0.0}
                 for span in ("start-up", "serving")}
        for line in path.read_text().splitlines():
            generation, pause, since = line.split()
            if generation != "2":
                continue
            span = spans["start-up" if float(since) < START_UP_SECONDS else "serving"]
            span["count"] += 1
            span["max_ms"] = max(span["max_ms"], float(pause))
            span["total_ms"] += float(pause)
        out[path.name.removeprefix("gc.")] = spans
    return out


def report(directory: str) -> str:
    lines = []
    for process, spans in summary(directory).items():
        serving, start = spans["serving"], spans["start-up"]
        lines.append(f"{process}: {serving['count']} full collections while serving, longest "
                     f"{serving['max_ms']:.1f} ms ({serving['total_ms']:.0f} ms in all); "
                     f"{start['count']} at start-up, longest {start['max_ms']:.1f} ms")
    return "\n".join(lines) or "no collections recorded"


if __name__ == "__main__":
    print(report(sys.argv[1]))
