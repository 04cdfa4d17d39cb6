"""Sample a running process with py-spy and boil the samples down to hot spots.

``record(pid, seconds, out_dir)`` writes profile-raw.txt (collapsed stacks) and profile.svg (flame graph)
and returns the functions with the most samples, by self time and by inclusive time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def find_pyspy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def _short(frame: str) -> str:
    """'relay (/x/src/routeway/api/chat.py:301)' → 'routeway/api/chat.py:relay' (line numbers merged)."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{match['func']}"


def _package(name: str) -> str:
    head = name.split(":", 1)[0]
    return head.split("/", 1)[0].removesuffix(".py") if "/" in head else head


def hot_spots(raw: str, top: int = 15) -> dict:
    """Self time per function (where the CPU goes), self time per package, and inclusive time of
    routeway's own functions (what the work is for; entry points such as the CLI left out)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] += n
        for name in set(frames):
            if name.startswith("routeway/") and not name.startswith(("routeway/cli.py", "routeway/__main__")):
                inclusive[name] += n
    packages: Counter[str] = Counter()
    for name, n in own.items():
        packages[_package(name)] += n

    def share(c: Counter[str]) -> list[dict]:
        return [{"function": k, "samples": v, "share": round(v / total, 4)} for k, v in c.most_common(top)]

    return {"samples": total, "self": share(own), "packages": share(packages), "inclusive": share(inclusive)}


def record(pid: int, seconds: float, out_dir: Path, cpu: str | None = None, rate: int = 250) -> dict:
    exe = find_pyspy()
    if exe is None:
        return {"error": "py-spy not installed (pip install py-spy)"}
    pin = ["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") else []
    raw_path = out_dir / "profile-raw.txt"
    half = max(1, int(seconds // 2))
    common = ["--pid", str(pid), "--duration", str(half), "--rate", str(rate), "--nonblocking"]
    runs = [pin + [exe, "record", *common, "--format", "raw", "-o", str(raw_path)],
            pin + [exe, "record", *common, "--format", "flamegraph", "-o", str(out_dir / "profile.svg")]]
    for argv in runs:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=half + 60)
        if done.returncode != 0:
            return {"error": f"py-spy failed: {done.stderr.strip()[-500:]}"}
    return hot_spots(raw_path.read_text())
