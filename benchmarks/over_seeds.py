"""Numbers over training seeds, and the Markdown tables that show them with their bindings.

Shared by the benchmark scripts that train several seeds per arm (real_data.py, small_data.py,
precision_quality.py): mean ± sd over seeds, the paired difference of two arms by the rule
declared in :data:`PAIRED_RULE`, and tables printed together with the binding comment that
tests/readme_numbers.py checks (every cell equal to the JSON field it names).
"""

from __future__ import annotations

import statistics
from typing import Any

PAIRED_RULE = ("a paired difference (same training seed, one run per arm) is called a change only "
               "if its 95% t-interval over seeds excludes 0; otherwise no change is detected "
               "with this many seeds")


def paired_difference(a: list[float], b: list[float]) -> dict[str, Any]:
    """a - b per seed (paired), its mean, sd (ddof 1), 95% t-interval and the verdict by
    :data:`PAIRED_RULE`.

    >>> paired_difference([3.0, 4.0, 5.0], [1.0, 1.0, 1.0])["verdict"]
    'change (interval excludes 0)'
    """
    from scipy.stats import t

    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
    half = t.ppf(0.975, len(diffs) - 1) * sd / len(diffs) ** 0.5 if len(diffs) > 1 else float("inf")
    lo, hi = mean - half, mean + half
    verdict = ("change (interval excludes 0)" if lo > 0 or hi < 0
               else "no change detected (interval includes 0)")
    return {"per_seed": diffs, "mean": mean, "sd": sd, "ci95": [lo, hi], "verdict": verdict,
            "n_seeds": len(diffs)}


def mean_sd(values: list[float]) -> dict[str, float | None]:
    """Mean and sd (ddof 1; None for one value) over seeds."""
    return {"mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else None, "n_seeds": len(values)}


def cell(expr: str, value: float, digits: int, sd: tuple[str, float] | None = None) -> tuple:
    """(text, binding) of one table cell: ``value`` (± ``sd``) bound to ``expr`` (; sd's)."""
    text = f"{value:.{digits}f}" + (f" ± {sd[1]:.{digits}f}" if sd else "")
    return text, expr + (f"; {sd[0]}" if sd else "")


def bound_table(file: str, header: list[str],
                rows: list[tuple[str, list[tuple[str, str]]]]) -> str:
    """A Markdown table with its binding comment: rows of (key, [(text, expression or '-')])."""
    lines = [f"<!-- numbers: benchmarks/results/{file}"]
    lines += [f"{key}: " + " | ".join(expr for _, expr in cells) for key, cells in rows]
    lines += ["-->", "| " + " | ".join(header) + " |",
              "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header))) + " |"]
    lines += ["| " + " | ".join(text for text, _ in cells) + " |" for _, cells in rows]
    return "\n".join(lines)
