"""The run's report page and the metrics file it is built from.

`read_metrics` reads back the ``metrics.jsonl`` that ``train.py`` writes; `write_report` lays out a run's
summary metrics, notes and figures as ``report.md`` and ``index.html`` in the run directory. Nothing here
draws: the figures are made by ``figures.py`` and linked by relative path.

Neighbours: ``train.py`` and ``experiments/`` call both at the end of a run; ``figures.save_loss_curves``
plots the records `read_metrics` returns.
"""

from __future__ import annotations

import html
import json
import numbers
import os
import pathlib
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

PathLike = str | os.PathLike


def read_metrics(path: PathLike) -> list[dict]:
    """Reads a metrics.jsonl file: one JSON object per line.

    A run killed mid-write leaves a truncated last line; it is dropped silently. An unreadable line
    elsewhere (a killed run that was later resumed appends after the fragment) is dropped with a warning
    naming the line, so a figure can still be made from the rest.

    Args:
      path: the metrics.jsonl file.

    Returns:
      The records in file order.

    Raises:
      ValueError: naming the line, if a readable line holds something other than a JSON object.
    """
    path = pathlib.Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    records = []
    for j, (lineno, line) in enumerate(numbered):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if j != len(numbered) - 1:
                warnings.warn(f"{path}:{lineno}: skipping unreadable metrics line ({e.msg}).", stacklevel=2)
            continue
        if not isinstance(rec, dict):  # A damaged file, not a wrong argument: ValueError, as for bad JSON.
            raise ValueError(  # noqa: TRY004
                f"{path}:{lineno}: expected a JSON object per line, got {type(rec).__name__}."
            )
        records.append(rec)
    return records


def _format_value(v) -> str:
    """Floats to 4 significant digits; ints and everything else as written."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return f"{float(v):.4g}"
    if isinstance(v, np.ndarray) and v.size == 1:
        return _format_value(v.item())
    return str(v)


def _relative_to(workdir: pathlib.Path, fig_path: PathLike) -> str:
    """A figure path as written in the report: relative to workdir, with forward slashes for browsers."""
    p = pathlib.Path(fig_path)
    if p.is_absolute():
        p = pathlib.Path(os.path.relpath(p, workdir))
    return p.as_posix()


def write_report(
    workdir: PathLike, title: str, summary: Mapping[str, object], figures: Sequence[tuple[str, str]], notes: str = ""
) -> pathlib.Path:
    """Writes ``<workdir>/report.md`` and ``<workdir>/index.html`` describing a run.

    Both hold: the title, a table of summary metrics (floats to 4 significant digits), the notes, then each
    figure with its caption. Images are linked by relative path, so the workdir can be moved or served
    as-is.

    Args:
      workdir: the run directory (created if missing).
      title: report heading.
      summary: metric name -> value, e.g. ``{"eval/neg_elbo (nats/example)": 93.42}``.
      figures: ``(path, caption)`` pairs; paths relative to workdir (e.g. "figures/samples.png"), absolute
        paths are made relative.
      notes: free text; blank lines separate paragraphs.

    Returns:
      The path of report.md.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    figs = [(_relative_to(workdir, p), str(c)) for p, c in figures]
    rows = [(str(k), _format_value(v)) for k, v in summary.items()]
    paragraphs = [p.strip() for p in str(notes).split("\n\n") if p.strip()]

    def md_cell(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    md = [f"# {title}", ""]
    if rows:
        md += ["| metric | value |", "|---|---|"]
        md += [f"| {md_cell(k)} | {md_cell(v)} |" for k, v in rows]
        md.append("")
    for p in paragraphs:
        md += [p, ""]
    for p, caption in figs:
        md += [f"![{caption}]({p})", "", f"*{caption}*", ""]
    report = workdir / "report.md"
    report.write_text("\n".join(md), encoding="utf-8")

    e = html.escape
    h = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        (
            "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
            "td:last-child{text-align:right;font-family:monospace}img{max-width:100%}</style>"
        ),
        "</head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    if rows:
        h.append("<table><tr><th>metric</th><th>value</th></tr>")
        h += [f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in rows]
        h.append("</table>")
    h += [f"<p>{e(p)}</p>" for p in paragraphs]
    for p, caption in figs:
        h.append(f'<figure><img src="{e(p)}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>')
    h.append("</body></html>")
    (workdir / "index.html").write_text("\n".join(h), encoding="utf-8")
    return report


def write_tables(
    workdir: PathLike, title: str, tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[object]]]]
) -> pathlib.Path:
    """Writes ``<workdir>/report.md`` and ``<workdir>/index.html`` holding tables (e.g. a sweep's members and
    groups): each a (heading, column names, rows) triple, values formatted as in `write_report`.

    Returns:
      The path of report.md.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    e = html.escape
    md = [f"# {title}", ""]
    h = ['<!DOCTYPE html><html><head><meta charset="utf-8">', f"<title>{e(title)}</title>"]
    h += ["<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"]
    h += ["td,th{border:1px solid #ccc;padding:4px 8px}td{font-family:monospace}</style></head><body>"]
    h.append(f"<h1>{e(title)}</h1>")
    for heading, columns, rows in tables:
        cells = [[_format_value(v).replace("|", "\\|") for v in row] for row in rows]
        md += [f"## {heading}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        md += ["| " + " | ".join(row) + " |" for row in cells]
        md.append("")
        h += [f"<h2>{e(heading)}</h2><table><tr>", *(f"<th>{e(c)}</th>" for c in columns), "</tr>"]
        h += ["<tr>" + "".join(f"<td>{e(_format_value(v))}</td>" for v in row) + "</tr>" for row in rows]
        h.append("</table>")
    h.append("</body></html>")
    report = workdir / "report.md"
    report.write_text("\n".join(md), encoding="utf-8")
    (workdir / "index.html").write_text("\n".join(h), encoding="utf-8")
    return report
