"""Reports: Markdown and self-contained HTML (images embedded, no network needed)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:60rem;
margin:2rem auto;padding:0 1rem;color:#1d2330;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccd;padding:.25rem .6rem;
text-align:right}th{background:#f2f4f8}td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;border:1px solid #eef}code,pre{background:#f6f7f9;
padding:.1rem .3rem;border-radius:3px}pre{padding:.6rem;overflow-x:auto;font-size:.8rem}
.muted{color:#667}
"""


def html_page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A standalone page; each section is (heading, inner HTML)."""
    parts = [f"<h2>{html.escape(h)}</h2>\n{body}" if h else body for h, body in sections]
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(parts) + "\n</body></html>\n")


def img(png: bytes, alt: str) -> str:
    return f'<img src="{data_uri(png)}" alt="{html.escape(alt)}">'


def fmt4(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}"


def lab_report(*, out: Path, data: dict, rows: list[dict], environment: dict, seed: int,
               epochs: int, batch_size: int, images: dict[str, bytes],
               summaries: dict[str, str]) -> tuple[str, str]:
    """The lab's report.md and report.html from its results (no computation here)."""
    headers = ["model", "layers", "params", "loss", "accuracy", "val_loss", "val_accuracy",
               "train seconds"]
    table = [[r["model"], r["layers"], f"{r['params']:,}", fmt4(r["loss"]), fmt4(r["accuracy"]),
              fmt4(r["val_loss"]), fmt4(r["val_accuracy"]), f"{r['seconds']:.2f}"]
             for r in rows]
    versions = {k: environment[k] for k in ("mlplab", "python", "keras", "backend",
                                            "backend_version", "numpy") if k in environment}
    setup = (f"SGD (learning rate 0.01), categorical cross-entropy, {epochs} epochs, batch size "
             f"{batch_size}, validation data = the test set, seed {seed}.")
    data_lines = [f"- name: {data['name']}",
                  f"- train / test: {data['train_size']:,} / {data['test_size']:,}",
                  f"- sha256: `{data['sha256']}`"]
    md = "\n\n".join([
        "# MNIST with a multilayer perceptron — lab report",
        setup,
        markdown_table(headers, table),
        "![comparison](comparison.png)",
        "## Data\n\n" + "\n".join(data_lines),
        "## Versions\n\n" + "\n".join(f"- {k}: {v}" for k, v in versions.items()),
        "## Models\n\n" + "\n\n".join(
            f"### {m}\n\n![{m}]({m}/curves.png)\n\n![{m} confusion]({m}/confusion.png)\n\n"
            f"![{m} mistakes]({m}/mistakes.png)\n\n```\n{s}\n```" for m, s in summaries.items()),
    ]) + "\n"
    sections = [
        ("", f"<p>{html.escape(setup)}</p>" + html_table(headers, table)),
        ("Comparison", img(images["comparison.png"], "validation curves of the three models")),
        ("A training digit", img(images["sample.png"], "a training digit with its label")),
        ("Data", "<ul>" + "".join(f"<li>{html.escape(line[2:])}</li>" for line in data_lines)
         + "</ul>"),
    ]
    for m, s in summaries.items():
        panels = img(images[f"{m}/curves.png"], f"{m} training curves")
        for picture, alt in (("confusion.png", "confusion matrix"),
                             ("mistakes.png", "most confident mistakes")):
            if f"{m}/{picture}" in images:
                panels += img(images[f"{m}/{picture}"], f"{m} {alt}")
        if f"{m}/confusion.png" in images:
            panels += (f'<p><a href="{html.escape(m)}/evaluation.html">{html.escape(m)}\'s '
                       "full evaluation</a> (per-class scores, calibration)</p>")
        sections.append((m, panels + f"<pre>{html.escape(s)}</pre>"))
    sections.append(("Versions", html_table(["library", "version"], list(versions.items()))))
    return md, html_page("MNIST with a multilayer perceptron — lab report", sections)
