"""The PNG beside the JSON of `pytgi bench`: output tokens/s, TTFT p50 and ITL p50
per level, one line per endpoint (medians over rounds). matplotlib is optional
(`pip install pytgi[bench]`); without it the plot is skipped with a note."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytgi.bench.runner import Measurement
from pytgi.bench.stats import median

PANELS = (
    ("output tokens/s", lambda m: m.output_tokens_per_s),
    ("TTFT p50 (ms)", lambda m: 1000 * m.ttft_s.p50 if m.ttft_s else None),
    ("ITL p50 (ms)", lambda m: 1000 * m.itl_s.p50 if m.itl_s else None),
)


def series(measurements: Sequence[Measurement], panel: int) -> tuple[list[str], dict[str, list[float | None]]]:
    """x labels (level and phase, in run order) and, per endpoint, the median per label."""
    values: dict[tuple[str, str], list[float]] = {}
    labels: list[str] = []
    for m in measurements:
        for phase, metrics in m.phases.items():
            label = m.level.label + ("" if phase == "all" else f" {phase}")
            if label not in labels:
                labels.append(label)
            value = PANELS[panel][1](metrics)
            if value is not None:
                values.setdefault((m.endpoint, label), []).append(value)
    endpoints = sorted({m.endpoint for m in measurements})
    lines: dict[str, list[float | None]] = {
        e: [median(values[(e, x)]) if (e, x) in values else None for x in labels] for e in endpoints}
    return labels, lines


def write_plot(measurements: Sequence[Measurement], path: Path, names: dict[str, str]) -> str:
    """Writes the PNG and says where; or says why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install 'pytgi[bench]')"
    if not measurements:
        return "plot skipped: nothing was measured"
    figure, axes = plt.subplots(1, len(PANELS), figsize=(6 * len(PANELS), 4.5))
    for panel, axis in enumerate(axes):
        labels, lines = series(measurements, panel)
        for endpoint, ys in lines.items():
            axis.plot(range(len(labels)), [float("nan") if y is None else y for y in ys], marker="o",
                      label=f"{endpoint}: {names.get(endpoint, '')}"[:60])
        axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        axis.set_title(PANELS[panel][0])
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return f"plot: {path}"

