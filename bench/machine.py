"""What the numbers were measured on: CPUs, kernel, Python, library versions, the routeway commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe() -> dict:
    return {
        "nproc": _run(["nproc"]) or str(os.cpu_count()),
        "cpu_model": cpu_model(),
        "mem_gib": mem_total_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "routeway_commit": _run(["git", "rev-parse", "--short", "HEAD"]),
        "routeway_tree_dirty": bool(_run(["git", "status", "--porcelain", "--", "src"])),
        "packages": {p: _version(p) for p in ("routeway", "uvicorn", "uvloop", "httptools", "msgspec")},
        "loadavg_at_start": loadavg(),
    }
