"""PNG plots of the latency distributions: latency by percentile (HdrHistogram style), one line per target."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedFormatter, FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

import hist  # noqa: E402

COLORS = {"direct": "#2c7bb6", "nginx": "#1a9641", "routeway": "#d7191c"}
TICKS = [(50, "50%"), (90, "90%"), (99, "99%"), (99.9, "99.9%"), (99.99, "99.99%")]


def _x(p: float) -> float:
    return 1.0 / (1.0 - min(p, 99.999) / 100.0)


def _panel(ax, runs: list[dict], metric: str, title: str) -> None:
    drawn = False
    low, high = float("inf"), 0.0
    for run in runs:
        encoded = run.get("hists", {}).get(metric)
        if not encoded:
            continue
        xs, ys = hist.curve(hist.decode(encoded))
        ax.plot([_x(p) for p in xs], ys, label=run["target"], color=COLORS.get(run["target"]), linewidth=1.5)
        drawn = True
        positive = [y for y in ys if y > 0]
        if positive:
            low, high = min(low, min(positive)), max(high, max(positive))
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([_x(p) for p, _ in TICKS]))
    ax.xaxis.set_major_formatter(FixedFormatter([label for _, label in TICKS]))
    ax.xaxis.set_minor_locator(FixedLocator([]))
    ax.set_xlim(1, _x(99.99) * 1.5)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("percentile")
    if drawn and high / low > 20:  # spans orders of magnitude: log scale, plain numbers
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("ms (log scale)")
    else:
        ax.set_ylabel("ms")
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)


def _figure(path: Path, panels: list[tuple[list[dict], str, str]], suptitle: str) -> None:
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    for ax, (runs, metric, title) in zip(axes[0], panels):
        _panel(ax, runs, metric, title)
    fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(results: dict, out: Path) -> None:
    by_scenario: dict[str, list[dict]] = {}
    for run in results["runs"]:
        by_scenario.setdefault(run["scenario"], []).append(run)
    rates = [name for name in by_scenario if name.startswith("rate-")]
    if rates:
        _figure(out / "latency-fixed-rates.png",
                [(by_scenario[n], "total", f"{n.split('-')[1]} req/s: latency from intended send") for n in rates],
                "Non-streaming chat, open loop")
    if "saturation" in by_scenario:
        _figure(out / "latency-saturation.png", [(by_scenario["saturation"], "service", "closed loop, 64 connections")],
                "Non-streaming chat at saturation")
    for name in by_scenario:
        if name.startswith(("stream", "concurrent")):
            runs = by_scenario[name]
            _figure(out / f"latency-{name}.png",
                    [(runs, "ttft", "time to first token"), (runs, "gap", "gap between chunks"),
                     (runs, "total", "whole stream")], f"Streaming: {name}")
