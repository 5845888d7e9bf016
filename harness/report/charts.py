"""Charts for the report, drawn with matplotlib's Agg backend and inlined as base64 PNG data URIs,
so the HTML needs nothing from the network. Each function takes plain data and returns a data URI
(or None when there is nothing to draw).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.slo import percentile  # noqa: E402

INK, MUTED, GRID = "#1f2933", "#6b7785", "#e4e7eb"
BLUE, TEAL, ORANGE, RED, PURPLE, GREEN = "#3b6ea5", "#2a9d8f", "#e9a23b", "#c0392b", "#7b5ea7", "#3c8d5a"
FAULT = "#f4a259"
PALETTE = [BLUE, TEAL, PURPLE, ORANGE, GREEN, RED]

plt.rcParams.update({
    "font.size": 8.5, "axes.titlesize": 9.5, "axes.titleweight": "bold", "axes.edgecolor": MUTED,
    "axes.labelcolor": INK, "xtick.color": MUTED, "ytick.color": MUTED, "axes.grid": True, "grid.color": GRID,
    "grid.linewidth": 0.6, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 110,
    "legend.frameon": False, "legend.fontsize": 7.5,
})


@dataclass(frozen=True)
class Window:
    """A fault window in seconds on the chart's time axis."""

    start_s: float
    end_s: float
    label: str


def to_data_uri(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _shade(ax: plt.Axes, windows: Sequence[Window], label: bool) -> None:
    for k, w in enumerate(windows):
        ax.axvspan(w.start_s, w.end_s, color=FAULT, alpha=0.18, lw=0, label="fault window" if label and k == 0 else None)


def _margins(fig: plt.Figure, left_in: float = 0.9, right_in: float = 0.25, top_in: float = 0.35,
             bottom_in: float = 0.5, hspace: float = 0.55) -> None:
    """Fixed margins in inches: cheaper than tight_layout (which draws every text twice) on busy CI machines."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left_in / w, right=1 - right_in / w, top=1 - top_in / h, bottom=bottom_in / h, hspace=hspace)


def latency_distributions(samples: dict[str, list[float]], targets: dict[str, list[tuple[float, str]]]) -> str | None:
    """Every sample of every latency metric on one log axis, with p50/p95/p99 and the SLO targets."""
    metrics = [m for m, v in samples.items() if v]
    if not metrics:
        return None
    fig, ax = plt.subplots(figsize=(10.5, 0.55 * len(metrics) + 1.1))
    _margins(fig, left_in=1.45, top_in=0.3, bottom_in=0.75)
    rows = list(reversed(metrics))
    for y, metric in enumerate(rows):
        values = sorted(samples[metric])
        n = len(values)
        jitter = [((k * 0.618034) % 1.0 - 0.5) * 0.36 for k in range(n)]  # deterministic spread
        ax.scatter([max(v, 0.1) for v in values], [y + j for j in jitter], s=11, color=BLUE, alpha=0.45, lw=0,
                   label="sample" if y == 0 else None)
        for q, color in ((99, PURPLE), (95, ORANGE), (50, INK)):  # p50 drawn last: on top when they coincide
            ax.plot([max(percentile(values, q), 0.1)] * 2, [y - 0.26, y + 0.26], color=color, lw=2.2, zorder=3,
                    solid_capstyle="butt", label=f"p{q}" if y == 0 else None)
        for target, label in targets.get(metric, []):
            ax.plot([target, target], [y - 0.32, y + 0.32], color=RED, lw=1.6, zorder=4)
        ax.annotate(f"n={n}  p95 {percentile(values, 95):.0f} ms", (1.0, y), xycoords=("axes fraction", "data"),
                    xytext=(-4, 7), textcoords="offset points", ha="right", fontsize=7, color=MUTED)
    ax.plot([], [], color=RED, lw=1.6, label="SLO target")
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("ms (log scale)")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09 - 0.3 / fig.get_size_inches()[1]), ncols=5)
    return to_data_uri(fig)


def _rolling(points: list[tuple[float, float]], q: float, bins: int = 30) -> tuple[list[float], list[float]]:
    """Percentile ``q`` per time bin (bins with at least 3 samples); nothing for sparse series."""
    if len(points) < 20:
        return [], []
    t0, t1 = min(p[0] for p in points), max(p[0] for p in points)
    width = (t1 - t0) / bins or 1.0
    xs, ys = [], []
    for b in range(bins):
        lo, hi = t0 + b * width, t0 + (b + 1) * width
        vals = [v for t, v in points if lo <= t < hi or (b == bins - 1 and t == t1)]
        if len(vals) >= 3:
            xs.append((lo + hi) / 2)
            ys.append(percentile(vals, q))
    return xs, ys


def latency_over_time(series: dict[str, list[tuple[float, float]]], windows: Sequence[Window]) -> str | None:
    """Samples against run time (s), a rolling p50 and p95 per metric, fault windows shaded."""
    metrics = [m for m, pts in series.items() if pts]
    if not metrics:
        return None
    fig, axes = plt.subplots(len(metrics), 1, figsize=(10.5, 1.8 * len(metrics) + 0.7), sharex=True, squeeze=False)
    for k, (ax, metric) in enumerate(zip(axes.flat, metrics)):
        pts = series[metric]
        _shade(ax, windows, label=(k == 0))
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, color=PALETTE[k % len(PALETTE)], alpha=0.7, lw=0,
                   label="sample")
        for q, style in ((50, ":"), (95, "-")):
            xs, ys = _rolling(pts, q)
            if xs:
                ax.plot(xs, ys, color=INK, ls=style, lw=1.0, label=f"rolling p{q}")
        ax.set_title(metric, loc="left")
        ax.set_ylabel("ms")
        ax.set_ylim(0, max(p[1] for p in pts) * 1.18 + 1)
        ax.legend(loc="upper right", ncols=4)
    axes.flat[-1].set_xlabel("seconds since the run's first session")
    _margins(fig)
    return to_data_uri(fig)


@dataclass
class Lane:
    """One row of a waterfall: point events (with optional labels) and spans."""

    name: str
    points: list[tuple[float, str]]
    spans: list[tuple[float, float]]
    color: str


def waterfall(lanes: list[Lane], windows: Sequence[Window]) -> str | None:
    """A session's timeline: one lane per kind of thing that happened, faults shaded."""
    lanes = [lane for lane in lanes if lane.points or lane.spans]
    if not lanes:
        return None
    fig, ax = plt.subplots(figsize=(10.5, 0.36 * len(lanes) + 0.8))
    _shade(ax, windows, label=bool(windows))
    xs_all = [x for lane in lanes for x, _ in lane.points] + [b for lane in lanes for _, b in lane.spans]
    x_max = max(xs_all + [w.end_s for w in windows] + [0.001])
    ax.set_xlim(0, x_max * 1.02)
    for y, lane in enumerate(reversed(lanes)):
        for a, b in lane.spans:
            ax.barh(y, max(b - a, 0.004), left=a, height=0.5, color=lane.color, alpha=0.55, lw=0)
        if lane.points:
            xs = [p[0] for p in lane.points]
            ax.scatter(xs, [y] * len(xs), marker="|", s=90, color=lane.color, lw=1.3)
            last = -math.inf
            for x, text in (p for p in lane.points if p[1]):
                if x - last < 0.07 * x_max:
                    continue  # too close to the previous label: they would print over each other
                last = x
                right = x > 0.8 * x_max  # near the right edge: write leftwards so the label stays inside
                ax.annotate(text, (x, y), xytext=(-2 if right else 2, 5), textcoords="offset points", fontsize=6.5,
                            color=INK, ha="right" if right else "left")
    ax.set_yticks(range(len(lanes)), [lane.name for lane in reversed(lanes)])
    ax.set_ylim(-0.7, len(lanes) - 0.3)
    ax.set_xlabel("seconds since the session started")
    ax.grid(axis="y", visible=False)
    if windows:
        ax.legend(loc="lower right")
    _margins(fig, left_in=1.0, top_in=0.12, bottom_in=0.45)
    return to_data_uri(fig)


def load_timeline(rows: list[dict]) -> str | None:
    """A load run over time (``load`` record's ``timeline``): open sessions, throughput and
    failures, and the exact final-latency and first-partial percentiles of each time bucket."""
    if len(rows) < 2:
        return None
    t = [r["t_s"] for r in rows]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(10.5, 6.2), sharex=True)
    a1.step(t, [r.get("open_sessions") or 0 for r in rows], where="post", color=BLUE, lw=1.4, label="open sessions (peak)")
    a1.set_title("concurrent sessions", loc="left")
    a1.legend(loc="upper right")
    a2.plot(t, [r.get("requests_per_s") or 0 for r in rows], color=TEAL, lw=1.2, label="measurements / s")
    a2.bar(t, [r.get("failures") or 0 for r in rows], width=(t[1] - t[0]) * 0.8, color=RED, alpha=0.8, label="failures",
           align="edge")
    a2.set_title("throughput and failures", loc="left")
    a2.legend(loc="upper right", ncols=2)
    for key, label, color, style in (("final_p50_ms", "final p50", PURPLE, ":"), ("final_p95_ms", "final p95", PURPLE, "-"),
                                     ("first_partial_p95_ms", "first partial p95", ORANGE, "-")):
        pts = [(x, r[key]) for x, r in zip(t, rows) if r.get(key) is not None]
        if pts:
            a3.plot([p[0] for p in pts], [p[1] for p in pts], color=color, ls=style, lw=1.2, marker=".", ms=3, label=label)
    a3.set_title("latency percentiles per time bucket (exact, raw samples)", loc="left")
    a3.set_ylabel("ms")
    a3.legend(loc="upper right", ncols=3)
    a3.set_xlabel("seconds since the load started")
    _margins(fig)
    return to_data_uri(fig)


def soak_rss(rows: list[dict], warmup_s: float | None = None) -> str | None:
    """The backend's resident memory during a soak (``soak`` record's ``rss``), warm-up shaded."""
    pts = [(r["t_s"], r["rss_mb"]) for r in rows if r.get("rss_mb") is not None]
    if len(pts) < 2:
        return None
    fig, ax = plt.subplots(figsize=(10.5, 2.6))
    if warmup_s:
        ax.axvspan(0, warmup_s, color=GRID, alpha=0.8, lw=0, label="warm-up (not judged)")
    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=BLUE, lw=1.4, marker=".", ms=3, label="rss")
    ax.set_title("server resident memory (GET /health rss_bytes)", loc="left")
    ax.set_ylabel("MB")
    ax.set_xlabel("seconds since the soak started")
    ax.set_ylim(0, max(p[1] for p in pts) * 1.15)
    ax.legend(loc="lower right", ncols=2)
    _margins(fig)
    return to_data_uri(fig)


STATUS_COLORS = {"pass": GREEN, "fail": RED, "unknown": ORANGE}


def slo_trend(labels: Sequence[str], values: Sequence[float | None], statuses: Sequence[str], target: float,
              title: str) -> str | None:
    """One SLO's measured value run by run (oldest left, this run last), its target as a dashed line,
    each point coloured by that run's verdict. Runs without a value leave a gap (and an open marker
    on the axis) rather than a made-up point."""
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(3.6, 2.1))
    xs = list(range(len(labels)))
    known = [(x, v) for x, v in zip(xs, values) if v is not None]
    ax.axhline(target, color=RED, ls="--", lw=1.0, label="target")
    # a line through consecutive known values only: a missing run breaks it
    run_x: list[float] = []
    run_y: list[float] = []
    for x, v in zip(xs, values):
        if v is None:
            if run_x:
                ax.plot(run_x, run_y, color=MUTED, lw=1.0)
            run_x, run_y = [], []
        else:
            run_x.append(x)
            run_y.append(v)
    if run_x:
        ax.plot(run_x, run_y, color=MUTED, lw=1.0)
    for x, v, s in zip(xs, values, statuses):
        if v is not None:
            ax.scatter([x], [v], s=36 if x == xs[-1] else 20, color=STATUS_COLORS.get(s, MUTED), zorder=3,
                       edgecolors=INK if x == xs[-1] else "none", linewidths=0.8)
    low = min([target] + [v for _, v in known])
    high = max([target] + [v for _, v in known])
    pad = (high - low) * 0.15 or abs(high) * 0.15 or 1.0
    ax.set_ylim(low - pad, high + pad)
    for x, v in zip(xs, values):
        if v is None:
            ax.scatter([x], [low - pad * 0.6], s=18, facecolors="none", edgecolors=MUTED, zorder=3)
    ax.set_xlim(-0.5, len(xs) - 0.5)
    step = max(1, math.ceil(len(xs) / 4))
    ticks = sorted(set(xs[::-1][::step]))
    ax.set_xticks(ticks, [labels[t][5:] if len(labels[t]) > 12 and labels[t][4] == "-" else labels[t][-11:]
                          for t in ticks], fontsize=6.5)
    ax.set_title(title, loc="left", fontsize=8.5)
    _margins(fig, left_in=0.55, right_in=0.12, top_in=0.28, bottom_in=0.38)
    return to_data_uri(fig)
