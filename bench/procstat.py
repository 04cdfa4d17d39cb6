"""CPU time and memory of a process, straight from /proc: utime+stime (all threads) and VmHWM / VmRSS."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU of every thread of ``pid`` so far (fields 14 and 15 of /proc/PID/stat); with
    "PID/task/TID", of that one thread."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def system_busy_seconds() -> float:
    """CPU seconds spent not idle by all CPUs since boot (first line of /proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal; guest is inside user
    return busy / TICK


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak since start, or since the last reset_peak) in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5]] = int(line.split()[1])
    return out


def reset_peak(pid: int) -> bool:
    """Make VmHWM start again from the current RSS (Linux ≥ 4.0: write 5 to clear_refs)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Watch:
    """CPU and memory of a set of processes over one measured run. ``start()`` … ``stop()``; a background
    thread also samples RSS every ``interval`` seconds in case VmHWM cannot be reset."""
    pids: dict[str, int]
    interval: float = 0.1
    cpu: dict[str, float] = field(default_factory=dict)
    main_thread_cpu: dict[str, float] = field(default_factory=dict)  # the event loop's thread
    peak_rss_kb: dict[str, int] = field(default_factory=dict)
    _cpu0: dict[str, float] = field(default_factory=dict)
    _main0: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _hwm_reset: dict[str, bool] = field(default_factory=dict)

    def start(self) -> Watch:
        for name, pid in self.pids.items():
            self._hwm_reset[name] = reset_peak(pid)
            self._cpu0[name] = cpu_seconds(pid)
            self._main0[name] = cpu_seconds(f"{pid}/task/{pid}")
            self.peak_rss_kb[name] = memory_kb(pid).get("VmRSS", 0)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            for name, pid in self.pids.items():
                try:
                    rss = memory_kb(pid).get("VmRSS", 0)
                except OSError:
                    continue
                self.peak_rss_kb[name] = max(self.peak_rss_kb[name], rss)

    def stop(self) -> Watch:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for name, pid in self.pids.items():
            self.cpu[name] = round(cpu_seconds(pid) - self._cpu0[name], 3)
            self.main_thread_cpu[name] = round(cpu_seconds(f"{pid}/task/{pid}") - self._main0[name], 3)
            mem = memory_kb(pid)
            if self._hwm_reset[name]:
                self.peak_rss_kb[name] = max(self.peak_rss_kb[name], mem.get("VmHWM", 0))
        return self
