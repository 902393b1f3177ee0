"""Comparing runs: overlaid curves, a table, and seed groups with mean ± std and a verdict.

Runs whose configs differ only in ``seed`` form one group. With two or more groups of at
least two seeds, Welch's t-test on the final validation accuracy says whether two
configs differ beyond seed noise (p < 0.05).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlplab.errors import RunError
from mlplab.runs import Run, open_run, write_bytes, write_json, write_text

ALPHA = 0.05


@dataclass
class Comparison:
    out: Path
    rows: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    verdicts: list[dict] = field(default_factory=list)
    text: str = ""


def group_key(run: Run) -> str:
    """A config without its seed, data limit aside: runs that differ only by seed share it."""
    d = run.config.to_dict()
    d.pop("seed")
    return json.dumps(d, sort_keys=True)


def group_label(run: Run) -> str:
    c = run.config
    return f"{c.describe()} {c.optimizer} lr={c.lr:g} bs={c.batch_size}"


def compare_runs(paths: list[Path], *, out: Path | None = None) -> Comparison:
    import numpy as np

    from mlplab.plots import band_png, comparison_png
    from mlplab.reports import markdown_table

    runs = [open_run(p) for p in paths]
    histories = {str(r.path): r.history() for r in runs}
    empty = [p for p, h in histories.items() if not h]
    if empty:
        raise RunError(f"{empty[0]} has no finished epoch yet; nothing to compare")
    out = out or Path("runs") / time.strftime("compare-%Y%m%d-%H%M%S")
    result = Comparison(out)
    for r in runs:
        h = histories[str(r.path)]
        result.rows.append({"run": str(r.path), "config": group_label(r), "seed": r.config.seed,
                            "epochs": len(h), "final_val_accuracy": h[-1]["val_accuracy"],
                            "best_val_accuracy": max(x["val_accuracy"] for x in h),
                            "final_val_loss": h[-1]["val_loss"],
                            "seconds": sum(x["seconds"] for x in h)})
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(group_key(r), []).append(r)
    bands = {}
    for members in groups.values():
        finals = np.array([histories[str(r.path)][-1]["val_accuracy"] for r in members])
        label = group_label(members[0])
        if label in bands:  # two configs with the same short label: tell them apart
            label += f" #{len(bands) + 1}"
        entry = {"config": label, "runs": [str(r.path) for r in members], "n": len(members),
                 "mean_final_val_accuracy": float(finals.mean()),
                 "std_final_val_accuracy": float(finals.std(ddof=1)) if len(finals) > 1 else 0.0,
                 "finals": finals}
        result.groups.append(entry)
        n_epochs = min(len(histories[str(r.path)]) for r in members)
        bands[label] = {
            "epoch": np.arange(1, n_epochs + 1),
            "val_accuracy": [[x["val_accuracy"] for x in histories[str(r.path)][:n_epochs]]
                             for r in members],
            "val_loss": [[x["val_loss"] for x in histories[str(r.path)][:n_epochs]]
                         for r in members],
        }
    result.verdicts = verdicts(result.groups)
    if any(g["n"] > 1 for g in result.groups):
        png = band_png(bands, title="mean ± std over seeds")
    else:
        png = comparison_png({r.name if len({x.name for x in runs}) == len(runs) else str(r.path):
                              histories[str(r.path)] for r in runs})
    table = markdown_table(
        ["run", "config", "seed", "epochs", "final val_acc", "best val_acc", "seconds"],
        [[x["run"], x["config"], x["seed"], x["epochs"], f"{x['final_val_accuracy']:.4f}",
          f"{x['best_val_accuracy']:.4f}", f"{x['seconds']:.1f}"] for x in result.rows])
    lines = [table]
    if any(g["n"] > 1 for g in result.groups):
        lines.append(markdown_table(
            ["config", "seeds", "final val_acc mean ± std"],
            [[g["config"], g["n"], f"{g['mean_final_val_accuracy']:.4f} ± "
              f"{g['std_final_val_accuracy']:.4f}"] for g in result.groups]))
    lines += [v["text"] for v in result.verdicts]
    result.text = "\n\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / "comparison.png", png)
    write_text(out / "comparison.md", "# Comparison\n\n" + result.text +
               "\n\n![comparison](comparison.png)\n")
    for g in result.groups:
        g["finals"] = [float(v) for v in g["finals"]]
    write_json(out / "comparison.json", {"runs": result.rows, "groups": result.groups,
                                         "verdicts": result.verdicts})
    return result


def verdicts(groups: list[dict]) -> list[dict]:
    """Welch's t-test between every pair of seed groups (n >= 2 each)."""
    from scipy import stats

    found = []
    multi = [g for g in groups if g["n"] >= 2]
    for i, a in enumerate(multi):
        for b in multi[i + 1:]:
            diff = a["mean_final_val_accuracy"] - b["mean_final_val_accuracy"]
            if a["std_final_val_accuracy"] == 0 and b["std_final_val_accuracy"] == 0:
                p = 0.0 if diff else 1.0
            else:
                p = float(stats.ttest_ind(a["finals"], b["finals"], equal_var=False).pvalue)
            differ = p < ALPHA
            text = (f"{a['config']} vs {b['config']}: difference {diff * 100:+.2f} points, "
                    f"Welch p = {p:.3g} → "
                    + ("they differ beyond seed noise" if differ
                       else "no difference beyond seed noise"))
            found.append({"a": a["config"], "b": b["config"], "difference": diff, "p": p,
                          "differ": differ, "text": text})
    return found
