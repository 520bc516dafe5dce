"""One writer for every report table: tidy CSV, GitHub Markdown and booktabs LaTeX.

A table is given twice, once per reader:

- ``records``: tidy rows for analysis (one column per quantity: estimate, CI low, CI high,
  n, p, ...; numbers as numbers, empty when undefined) -> ``name.csv``;
- ``views``: what a paper shows (:class:`View`: caption, label, header, rows of cells, notes),
  rendered to ``name.md`` (all views, CIs inline) and ``name.tex`` (one float per view,
  booktabs rules, ``\\caption`` + ``\\label``, CIs in small type under the estimate so
  columns stay narrow). A view marked ``wide`` becomes ``table*`` (both columns of a
  two-column paper); every other view fits one column. ``\\usepackage{booktabs}`` is the
  only package the .tex needs.

Cells are strings, numbers or :class:`Est` (estimate with optional CI); :data:`GROUP`
rows span the table (a sub-heading such as a context or a family).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from clin_jepa.utils import atomic_path


@dataclass(frozen=True)
class Est:
    """An estimate with an optional 95 % CI, printed with ``nd`` decimals (``sign``: always +/-)."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    nd: int = 3
    sign: bool = False
    suffix: str = ""


@dataclass
class View:
    caption: str
    label: str  # LaTeX label, e.g. "tab:drift"
    header: list[str]
    rows: list[list]  # cells; a row [GROUP, text] is a spanning sub-heading
    notes: list[str] = field(default_factory=list)  # printed under the table
    wide: bool = False  # table* (spans both columns of a two-column page)
    align: str = ""  # LaTeX column spec; default l then r for every other column


GROUP = object()  # first cell of a spanning sub-heading row


def is_missing(x) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def num(x, nd: int = 3, sign: bool = False) -> str:
    """A number with ``nd`` decimals; '-' when missing; ints as ints with thousands separators."""
    if is_missing(x):
        return "-"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def format_p(p: float | None, n_boot: int | None) -> str:
    """A bootstrap p-value at the resolution the replicates allow: below 1/B it reads ``p < 1/B``."""
    if is_missing(p):
        return "-"
    floor = 1.0 / n_boot if n_boot else 0.0
    if p < floor:
        return f"p < {floor:.2g}"
    return f"p = {p:.3f}" if p < 0.995 else "p = 1.00"


def seed_stat(mean: float | None, sd: float | None, n: int, nd: int = 3) -> str:
    """mean +- sd over seeds, only with at least two seeds (one seed has no spread to show)."""
    if is_missing(mean) or n < 2:
        return "-"
    return f"{mean:.{nd}f} +- {sd:.{nd}f} (n={n})"


def _est_text(e: Est) -> tuple[str, str]:
    """(estimate, CI) strings; CI empty when absent."""
    v = "-" if is_missing(e.value) else num(float(e.value), e.nd, e.sign) + e.suffix
    if is_missing(e.lo) or is_missing(e.hi) or is_missing(e.value):
        return v, ""
    return v, f"[{num(float(e.lo), e.nd)}, {num(float(e.hi), e.nd)}]"  # sign shown on the estimate only


def md_cell(c) -> str:
    if isinstance(c, Est):
        v, ci = _est_text(c)
        return f"{v} {ci}".strip()
    return (num(c) if isinstance(c, (int, float)) and not isinstance(c, bool) else str(c)).replace("|", "/")


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"$<$", ">": r"$>$"}


def tex_escape(s: str) -> str:
    s = "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(s))
    return s.replace("+-", r"$\pm$").replace("$<$=", r"$\le$")


def _tex_num(s: str) -> str:
    """A formatted number with a real minus sign."""
    return s.replace("-", "$-$") if s != "-" else "--"


def tex_cell(c) -> str:
    if isinstance(c, Est):
        v, ci = _est_text(c)
        v = _tex_num(v).replace("x", r"$\times$") if c.suffix == "x" else _tex_num(v)
        if not ci:
            return v
        lo, hi = ci[1:-1].split(", ")
        return _stack(v, r"{\scriptsize [" + _tex_num(lo) + r",\," + _tex_num(hi) + "]}")
    if isinstance(c, (int, float)) and not isinstance(c, bool):
        return _tex_num(num(c)).replace(",", "{,}")
    return tex_escape(c)


def _stack(*lines: str, pos: str = "c") -> str:
    """Several lines in one cell (a nested tabular: no package beyond booktabs)."""
    return rf"\begin{{tabular}}[{pos}]{{@{{}}c@{{}}}}" + r"\\[-1pt]".join(lines) + r"\end{tabular}"


def tex_header(h: str) -> str:
    """A header cell; longer than 9 characters it breaks at the space nearest its middle."""
    if len(h) <= 9 or " " not in h:
        return tex_escape(h)
    spaces = [i for i, ch in enumerate(h) if ch == " "]
    cut = min(spaces, key=lambda i: abs(i - len(h) / 2))
    return _stack(tex_escape(h[:cut]), tex_escape(h[cut + 1:]), pos="b")


def _column_spec(v: View) -> str:
    """l for text columns (every cell a non-numeric string), r for numbers and estimates."""
    body = [r for r in v.rows if not (r and r[0] is GROUP)]

    def text(c) -> bool:
        return isinstance(c, str) and c not in ("-", "") and not c.lstrip("+-").replace(".", "").isdigit()

    return "".join("l" if j == 0 or (body and all(text(r[j]) for r in body)) else "r"
                   for j in range(len(v.header)))


def render_md(views: list[View]) -> str:
    out = []
    for v in views:
        out += [f"**{v.caption}**", "", "| " + " | ".join(v.header) + " |", "|" + "---|" * len(v.header)]
        for r in v.rows:
            if r and r[0] is GROUP:
                out.append("| **" + md_cell(r[1]) + "** |" + " |" * (len(v.header) - 1))
            else:
                out.append("| " + " | ".join(md_cell(c) for c in r) + " |")
        out += [""] + [f"Note: {n}  " for n in v.notes] + ([""] if v.notes else [])
    return "\n".join(out).rstrip() + "\n"


def render_tex(views: list[View]) -> str:
    out = [r"% generated by `clin-jepa report`; needs \usepackage{booktabs}"]
    for v in views:
        env = "table*" if v.wide else "table"
        ncol = len(v.header)
        spec = v.align or _column_spec(v)
        out += [rf"\begin{{{env}}}[tbp]", r"\centering", r"\footnotesize", r"\setlength{\tabcolsep}{2.5pt}",
                rf"\caption{{{tex_escape(v.caption)}}}", rf"\label{{{v.label}}}",
                rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                " & ".join(tex_header(h) for h in v.header) + r" \\", r"\midrule"]
        first = True
        for r in v.rows:
            if r and r[0] is GROUP:
                if not first:
                    out.append(r"\addlinespace")
                out.append(rf"\multicolumn{{{ncol}}}{{@{{}}l}}{{\textit{{{tex_escape(r[1])}}}}} \\")
            else:
                out.append(" & ".join(tex_cell(c) for c in r) + r" \\")
            first = False
        out += [r"\bottomrule", r"\end{tabular}"]
        if v.notes:
            width = r"\textwidth" if v.wide else r"\columnwidth"
            out += [rf"\par\smallskip\parbox{{{width}}}{{\scriptsize " + " ".join(tex_escape(n) for n in v.notes)
                    + "}"]
        out += [rf"\end{{{env}}}", ""]
    return "\n".join(out)


def render_csv(records: list[dict]) -> str:
    """Tidy CSV: the union of the records' keys (first-seen order); missing numbers are empty,
    floats rounded to 6 significant digits."""
    cols: list[str] = []
    for r in records:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: "" if is_missing(v) else float(f"{v:.6g}") if isinstance(v, float) else v
                    for k, v in r.items()})  # 6 significant digits: beyond any CI's resolution
    return buf.getvalue()


def write_table(out: Path, name: str, records: list[dict], views: list[View]) -> list[Path]:
    """name.csv (tidy records), name.md and name.tex (the views); each written atomically."""
    paths = []
    for ext, text in (("csv", render_csv(records)), ("md", render_md(views)), ("tex", render_tex(views))):
        p = Path(out) / f"{name}.{ext}"
        with atomic_path(p) as tmp:
            tmp.write_text(text)
        paths.append(p)
    return paths
