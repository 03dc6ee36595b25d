"""The plain-text table, the ratios and the target checks printed by benchmarks/compare.py."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from benchmarks.measure import Series

TARGET_PRODUCE = 200_000
TARGET_DRAIN = 50_000
TARGET_DRAIN_VS_DOCS = 25.0


def rate_text(rate: float) -> str:
    return "n/a" if math.isnan(rate) else f"{rate:,.0f}"


def ratio_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.2f}x"


def _spread(series: Series) -> str:
    if not series.items:
        return "-"
    rates = series.rates()
    if any(math.isnan(r) for r in rates):
        return "n/a"
    return f"{min(rates):,.0f} - {max(rates):,.0f}"


def table(rows: Sequence[Series]) -> str:
    """One line per series: items, median seconds, median rate and its spread, median CPU."""
    head = (
        f"{'peer':<10} {'operation':<40} {'items':>7} {'s median':>8} {'items/s median':>14} "
        f"{'items/s min - max':>21} {'client CPU s':>12} {'server CPU s':>12}"
    )
    lines = [head, "-" * len(head)]
    for s in rows:
        rate = rate_text(s.median_rate()) if s.items else "-"
        lines.append(
            f"{s.peer:<10} {s.operation:<40} {s.items:>7} {s.median('seconds'):>8.3f} "
            f"{rate:>14} {_spread(s):>21} {s.median('client_cpu'):>12.2f} "
            f"{s.median('server_cpu'):>12.2f}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Headline:
    """The series the ratios and targets are computed from; None where not measured."""

    wq_produce: Series | None
    wq_produce_command: Series | None
    wq_drain: Series | None
    wq_drain_steady: Series | None
    rq_produce: Series | None
    rq_drain: Series | None
    rq_drain_steady: Series | None
    docs_produce: Series | None
    docs_drain: Series | None
    docs_drain_steady: Series | None


def _rate(series: Series | None) -> float:
    return float("nan") if series is None else series.median_rate()


def _ratio(a: Series | None, b: Series | None) -> float:
    return _rate(a) / _rate(b)


def _verdict(value: float, target: float) -> str:
    if math.isnan(value):
        return "not measured"
    return "met" if value >= target else "missed"


def ratios(h: Headline) -> dict[str, float]:
    """workqueue's median rate over each peer's, per operation."""
    return {
        "produce workqueue/RQ": _ratio(h.wq_produce, h.rq_produce),
        "produce workqueue/docs": _ratio(h.wq_produce, h.docs_produce),
        "drain workqueue/RQ end-to-end": _ratio(h.wq_drain, h.rq_drain),
        "drain workqueue/RQ without start-up": _ratio(h.wq_drain_steady, h.rq_drain_steady),
        "drain workqueue/docs end-to-end": _ratio(h.wq_drain, h.docs_drain),
        "drain workqueue/docs without start-up": _ratio(h.wq_drain_steady, h.docs_drain_steady),
    }


def targets(h: Headline, r: Mapping[str, float]) -> dict[str, str]:
    """Whether each target of the project brief was met ("met", "missed", "not measured")."""
    return {
        "produce library": _verdict(_rate(h.wq_produce), TARGET_PRODUCE),
        "produce command end-to-end": _verdict(_rate(h.wq_produce_command), TARGET_PRODUCE),
        "drain without start-up": _verdict(_rate(h.wq_drain_steady), TARGET_DRAIN),
        "drain end-to-end": _verdict(_rate(h.wq_drain), TARGET_DRAIN),
        "drain vs docs without start-up": _verdict(
            r["drain workqueue/docs without start-up"], TARGET_DRAIN_VS_DOCS
        ),
        "drain vs docs end-to-end": _verdict(
            r["drain workqueue/docs end-to-end"], TARGET_DRAIN_VS_DOCS
        ),
    }


def summary_lines(h: Headline, r: Mapping[str, float], t: Mapping[str, str]) -> list[str]:
    """The ratio lines, then the target lines."""
    return [
        f"ratio produce workqueue/RQ:   {ratio_text(r['produce workqueue/RQ'])} "
        "(Producer.put_many vs enqueue_many)",
        f"ratio produce workqueue/docs: {ratio_text(r['produce workqueue/docs'])} "
        "(Producer.put_many vs pipelined RPUSH)",
        f"ratio drain workqueue/RQ:     {ratio_text(r['drain workqueue/RQ without start-up'])} "
        f"without start-up, {ratio_text(r['drain workqueue/RQ end-to-end'])} end-to-end",
        f"ratio drain workqueue/docs:   {ratio_text(r['drain workqueue/docs without start-up'])} "
        f"without start-up, {ratio_text(r['drain workqueue/docs end-to-end'])} end-to-end",
        "",
        f"target produce >= {TARGET_PRODUCE:,} items/s: library {rate_text(_rate(h.wq_produce))}/s "
        f"{t['produce library']}; command end-to-end {rate_text(_rate(h.wq_produce_command))}/s "
        f"{t['produce command end-to-end']}",
        f"target drain >= {TARGET_DRAIN:,} items/s: without start-up "
        f"{rate_text(_rate(h.wq_drain_steady))}/s {t['drain without start-up']}; end-to-end "
        f"{rate_text(_rate(h.wq_drain))}/s {t['drain end-to-end']}",
        f"target drain >= {TARGET_DRAIN_VS_DOCS:g}x the docs algorithm: without start-up "
        f"{ratio_text(r['drain workqueue/docs without start-up'])} "
        f"{t['drain vs docs without start-up']}; end-to-end "
        f"{ratio_text(r['drain workqueue/docs end-to-end'])} {t['drain vs docs end-to-end']}",
    ]
