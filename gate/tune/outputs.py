"""What `gate tune` leaves in --out DIR:

    policy.yml   the winning policy, committable (or at --write PATH); `gate policy validate`
                 accepts it and `gate check` with `policy: policy.yml` reproduces the verdict
    tune.json    every trial (policy, sizes, compression, metrics, latency ratio, pass/fail and
                 why), every skipped candidate and why, the sensitivity, the winner
    tune.md      the Pareto table (gzip size vs accuracy), then every trial and every skip
    pareto.png   size against accuracy, latency ratio as colour, the winner marked
    trials/NN-name/  each trial's gate.yml, report.json and report.md
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import yaml

from gate import __version__
from gate.tune.search import Search
from gate.tune.trial import Trial

POLICY, JSON, MD, PNG = "policy.yml", "tune.json", "tune.md", "pareto.png"


def pareto(trials: list[Trial]) -> list[Trial]:
    """Trials no other trial beats on both gzip size and accuracy (smaller, more accurate)."""
    pts = [t for t in trials if t.bytes_gzip is not None and t.accuracy is not None]
    front = []
    for t in pts:
        dominated = any(o is not t and o.bytes_gzip <= t.bytes_gzip and o.accuracy >= t.accuracy
                        and (o.bytes_gzip < t.bytes_gzip or o.accuracy > t.accuracy) for o in pts)
        if not dominated:
            front.append(t)
    return sorted(front, key=lambda t: t.bytes_gzip)


def policy_yaml(winner: Trial, summary: str) -> str:
    policy = {"description": f"gate tune: {winner.name}, {_x(winner.compression)} gzip vs float32, accuracy drop "
                             f"{_pts(winner.accuracy_drop)}"[:200], **winner.policy}
    head = (f"# Written by `gate tune` (model-gate {__version__}, "
            f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}).\n"
            f"# {summary}\n"
            "# Use it from gate.yml as `policy: <path to this file>`; `gate check` measures it again.\n")
    return head + yaml.safe_dump(policy, sort_keys=False, width=100)


def write_all(out: Path, search: Search, winner: Trial | None, closest: Trial | None, summary: str, cfg,
              write: str | Path | None) -> dict[str, str]:
    files = {}
    if winner is not None:
        path = Path(write) if write else out / POLICY
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(policy_yaml(winner, summary), encoding="utf-8")
        files["policy"] = str(path)
    data = {"tool": f"model-gate {__version__}", "created_at": datetime.now(timezone.utc).isoformat(),
            "config": str(cfg.path), "objective": search.objective, "budget_minutes": round(search.budget_s / 60, 2),
            "elapsed_minutes": round(search.elapsed() / 60, 2), "summary": summary,
            "winner": winner.name if winner else None, "closest": closest.name if closest else None,
            "trials": [t.to_dict() for t in search.trials], "skipped": [s.to_dict() for s in search.skipped],
            "pareto": [t.name for t in pareto(search.trials)], "sensitivity": search.sensitivity}
    (out / JSON).write_text(json.dumps(data, indent=1), encoding="utf-8")
    files["json"] = str(out / JSON)
    (out / MD).write_text(markdown(search, winner, closest, summary), encoding="utf-8")
    files["md"] = str(out / MD)
    png = plot(search.trials, winner, out / PNG)
    if png:
        files["png"] = png
    return files


def _pts(drop: float | None) -> str:
    return "–" if drop is None else f"{100 * drop:+.2f} pts"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def _row(t: Trial, winner: Trial | None) -> str:
    mark = " **(winner)**" if winner is not None and t.name == winner.name else ""
    gz = f"{t.bytes_gzip / 1024:.1f}" if t.bytes_gzip else "–"
    why = "" if t.passed else "; ".join(t.failed)[:160].replace("|", "/")
    return (f"| {t.index} | `{t.name}`{mark} | {t.family} | {gz} | {_x(t.compression)} | {_pts(t.accuracy_drop)} "
            f"| {_x(t.latency_ratio)} | {t.status}{' (cache)' if t.cached else ''} | {t.seconds:.0f} | {why} |")


HEADER = ("| # | policy | family | gzip KiB | vs float32 | accuracy drop | latency | verdict | s | why not |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def markdown(search: Search, winner: Trial | None, closest: Trial | None, summary: str) -> str:
    lines = ["# gate tune", "", summary, "",
             f"Objective: smallest {'gzip size' if search.objective == 'size' else 'p50 latency'} among the "
             f"policies that pass every threshold. Budget {search.budget_s / 60:.0f} min, used "
             f"{search.elapsed() / 60:.1f} min.", "", "## Pareto front (gzip size vs accuracy)", "", HEADER]
    lines += [_row(t, winner) for t in pareto(search.trials)]
    lines += ["", "## Every trial", "", HEADER] + [_row(t, winner) for t in search.trials]
    if search.skipped:
        lines += ["", "## Skipped", "", "| candidate | family | why |", "|---|---|---|"]
        lines += [f"| `{s.name}` | {s.family} | {s.reason} |" for s in search.skipped]
    if winner is None and closest is not None:
        lines += ["", f"Closest: `{closest.name}` — " + "; ".join(closest.failed)]
    if search.sensitivity and search.sensitivity.get("layers"):
        sens = search.sensitivity
        lines += ["", f"Per-layer sensitivity: {sum(len(v) for v in sens['layers'].values())} layer curves on "
                      f"{sens.get('examples')} {sens.get('split')} examples ({sens.get('metric')}), "
                      f"{sens.get('seconds')} s (tune.json has them)."]
    return "\n".join(lines) + "\n"


def plot(trials: list[Trial], winner: Trial | None, path: Path) -> str | None:
    pts = [t for t in trials if t.bytes_gzip is not None and t.accuracy is not None]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.colors import LogNorm

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    lat = [t.latency_ratio if t.latency_ratio else float("nan") for t in pts]
    known = [v for v in lat if v == v]
    norm = LogNorm(min(known), max(known)) if known and min(known) < max(known) else None
    sc = ax.scatter([t.bytes_gzip / 1024 for t in pts], [100 * t.accuracy for t in pts], c=lat, cmap="viridis",
                    norm=norm, marker="o", s=46, edgecolors=["black" if t.passed else "none" for t in pts])
    fig.colorbar(sc, ax=ax, label="latency vs float32 (p50 ratio)")
    for t in pts:
        ax.annotate(t.name, (t.bytes_gzip / 1024, 100 * t.accuracy), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    if winner is not None and winner.bytes_gzip and winner.accuracy is not None:
        ax.scatter([winner.bytes_gzip / 1024], [100 * winner.accuracy], marker="*", s=260, facecolors="none",
                   edgecolors="red", linewidths=1.5, label=f"winner: {winner.name}")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("candidate .tflite, gzip KiB (log)")
    ax.set_ylabel("accuracy, %")
    ax.set_title("gate tune: size vs accuracy (black edge: passed every threshold)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)
