"""The report's HTML and CSS: an index of the studies and one page per study.

Static pages: no script, no network, every link relative. Every value put into a page
goes through :func:`html.escape`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

from .._version import __version__
from ..labels import SEVERITIES, slug
from ._images import CONFIDENCE_BINS, MAX_SIDE, UNKNOWN
from ._summary import LOW_CONFIDENCE, SEVERITY_WORDS, StudySummary, flag_words, row_name

CSS_NAME = "report.css"

CSS = """\
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 72em;
       padding: 0 1em; color: #111; background: #fff; }
h1 { font-size: 1.5em; margin: 0.2em 0; } h2 { font-size: 1.2em; margin-top: 1.6em; }
h3 { font-size: 1.02em; margin: 1.1em 0 0.3em; }
a { color: #0050a0; }
table { border-collapse: collapse; margin: 0.4em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.check { color: #8a2e00; }
.ok { color: #1c5e20; }
.missing { border: 2px solid #D55E00; padding: 0.4em 1em; background: #fff5ee; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
.slices { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #333; max-width: 256px; }
img { image-rendering: auto; background: #000; }
.legend span { margin-right: 1.2em; white-space: nowrap; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: -0.1em;
          border: 1px solid #000; margin-right: 0.3em; }
.bars { display: grid; grid-template-columns: 6.5em 8em max-content; gap: 0.1em 0.5em;
        align-items: center; font-size: 0.85em; white-space: nowrap; }
.pair { display: flex; flex-direction: column; gap: 1px; }
meter { display: block; width: 8em; height: 0.7em; }
meter.prior { height: 0.45em; }
meter::-webkit-meter-bar { background: #eee; border: 0; border-radius: 0; }
meter::-webkit-meter-optimum-value { background: #0072B2; }
meter.prior::-webkit-meter-optimum-value { background: #777; }
meter::-moz-meter-bar { background: #0072B2; }
meter.prior::-moz-meter-bar { background: #777; }
.grade { font-weight: 700; }
.crops { display: flex; gap: 0.4em; align-items: flex-start; }
#rows td:nth-child(3) { max-width: 17em; }
#rows td:nth-child(5) { min-width: 14em; }
.note { font-size: 0.85em; color: #444; }
"""
"""The report's style sheet, written to ``report.css``."""


@dataclass
class Figure:
    """One image of a page: its path relative to the page, alt text, caption, size."""

    src: str
    alt: str
    caption: str
    width: int
    height: int


@dataclass
class SeriesBlock:
    """One series of a study: its figures, its points, or why it cannot be shown."""

    description: str
    series_id: int | None
    figures: list[Figure] = field(default_factory=list)
    points: list = field(default_factory=list)  # the series' points, as named tuples
    problem: str | None = None


@dataclass
class GradeRow:
    """One of the 25 rows of a study: its grade, prior, crops and flags."""

    condition: str
    level: str
    proba: tuple[float, float, float] | None
    prior: tuple[float, float, float]
    on_prior: bool
    crops: list = field(default_factory=list)  # Figure, or a sentence saying why none
    flags: list[str] = field(default_factory=list)
    points: list[str] = field(default_factory=list)


def _number(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "—"


def _head(title: str, css: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n"
        f'<link rel="stylesheet" href="{escape(css)}">\n</head>\n<body>\n'
    )


def _foot() -> str:
    version = escape(__version__)
    return (
        f'<footer class="note"><p>Written by spinecls {version}.</p></footer>\n</body>\n</html>\n'
    )


def _worst(summary: StudySummary) -> str:
    worst = summary.worst()
    if worst is None:
        return "—"
    severity, condition, level, p = worst
    return f"{SEVERITY_WORDS[severity]}: {row_name(condition, level)} ({p:.2f})"


def _confidence(summary: StudySummary) -> str:
    text = _number(summary.lowest_confidence)
    if math.isfinite(summary.lowest_level_confidence):
        text += f" (level naming {_number(summary.lowest_level_confidence)})"
    return text


def _flags(summary: StudySummary) -> str:
    raised = [f"{flag_words(c)[0]} ×{n}" for c, n in summary.flags.items() if n]
    return ", ".join(raised) or "none"


def _reasons(summary: StudySummary) -> str:
    reasons = summary.reasons()
    if not reasons:
        return '<span class="ok">nothing stands out</span>'
    return '<span class="check">' + escape("; ".join(reasons)) + "</span>"


def study_file(study_id: int) -> str:
    """A study page's path relative to the report's root."""
    return f"studies/{study_id}.html"


def _cell(text: str, check: bool, numeric: bool = False) -> str:
    classes = " ".join(c for c, on in (("num", numeric), ("check", check)) if on)
    return f'<td class="{classes}">{escape(text)}</td>' if classes else f"<td>{escape(text)}</td>"


def _missing(summary: StudySummary) -> str:
    absent = [f"{summary.n_absent} row(s) not in the submission"] if summary.n_absent else []
    return "; ".join([*summary.missing, *absent]) or "—"


def index_page(summaries: list[StudySummary], source: str) -> str:
    """``index.html``: one row per study, the studies to check first."""
    to_check = sum(bool(s.reasons()) for s in summaries)
    rows = []
    for s in summaries:
        low = min(s.lowest_confidence, s.lowest_level_confidence) < LOW_CONFIDENCE
        rows.append(
            "<tr>"
            f'<td><a href="{escape(study_file(s.study_id))}">{s.study_id}</a></td>'
            + _cell(str(len(s.reasons())), bool(s.reasons()), numeric=True)
            + _cell(_worst(s), False)
            + _cell(_confidence(s), low, numeric=True)
            + _cell(_flags(s), any(s.flags.values()))
            + _cell(str(s.n_prior), s.n_prior > 0, numeric=True)
            + _cell(_missing(s), bool(s.missing or s.n_absent))
            + "</tr>"
        )
    return (
        _head("spinecls report", CSS_NAME) + "<header><h1>spinecls report</h1>\n"
        f'<p>{len(summaries)} studies from {escape(source)}; <span class="check">'
        f"{to_check} to check</span>. The studies with the most reasons to check them come "
        "first (a series missing or unreadable, rows missing from the submission or on the "
        f"class prior, each kind of review flag raised, a confidence under {LOW_CONFIDENCE}), "
        "then those with the lowest point confidence. Cells that are a reason are in "
        '<span class="check">this colour</span>.</p>'
        "</header>\n<main>\n"
        '<table id="studies">\n<caption class="note">One row per study; the study id links '
        "to its page.</caption>\n"
        "<thead><tr><th>Study</th><th>Reasons to check</th><th>Worst grade</th>"
        "<th>Lowest confidence</th><th>Flags raised</th><th>Rows on the prior</th>"
        "<th>Missing or unreadable</th></tr></thead>\n"
        "<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n</main>\n" + _foot()
    )


def _legend() -> str:
    glyph = {"circle": "○", "square": "□", "cross": "✕", "diamond": "◇"}
    items = []
    for k, (name, low, colour, shape) in enumerate((*CONFIDENCE_BINS, UNKNOWN)):
        if name == UNKNOWN[0]:
            words = "no confidence given"
        elif k == 0:
            words = f"{name} confidence ({low} or more)"
        else:
            words = f"{name} confidence ({low} to {CONFIDENCE_BINS[k - 1][1]})"
        items.append(
            f'<span><span class="swatch" style="background:{colour}"></span>'
            f"{glyph[shape]} {escape(words)}</span>"
        )
    return (
        '<p class="legend">Points are drawn in their confidence class: ' + "".join(items) + "</p>"
    )


def _img(figure: Figure) -> str:
    return (
        f'<img src="{escape(figure.src)}" alt="{escape(figure.alt)}" '
        f'width="{figure.width}" height="{figure.height}">'
    )


def _figure(figure: Figure) -> str:
    return f"<figure>{_img(figure)}<figcaption>{escape(figure.caption)}</figcaption></figure>"


def _points_table(points: list, flags: list[str]) -> str:
    has_level = hasattr(points[0], "level_confidence")
    head = "<th>Condition</th><th>Level</th><th>Instance</th><th>x</th><th>y</th>"
    head += "<th>Confidence</th>" + ("<th>Level confidence</th>" if has_level else "")
    head += "<th>Flags</th>"
    rows = []
    for point in points:
        raised = [flag_words(c)[0] for c in flags if getattr(point, c)]
        cells = (
            f"<td>{escape(row_name(point.condition, point.level).rsplit(' ', 1)[0])}</td>"
            f"<td>{escape(point.level)}</td><td class='num'>{point.instance_number}</td>"
            f"<td class='num'>{point.x:.1f}</td><td class='num'>{point.y:.1f}</td>"
            f"<td class='num'>{_number(getattr(point, 'confidence', math.nan))}</td>"
        )
        if has_level:
            cells += f"<td class='num'>{_number(point.level_confidence)}</td>"
        cells += f"<td>{escape(', '.join(raised) or '—')}</td>"
        rows.append(f"<tr>{cells}</tr>")
    body = "".join(rows)
    return f'<table class="points"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _series(block: SeriesBlock, flags: list[str]) -> str:
    title = block.description + ("" if block.series_id is None else f", series {block.series_id}")
    out = [f"<h3>{escape(title)}</h3>"]
    if block.problem:
        out.append(f'<p class="check">{escape(block.problem)}</p>')
    if block.figures:
        out.append('<div class="slices">' + "".join(_figure(f) for f in block.figures) + "</div>")
    if block.points:
        out.append(_points_table(block.points, flags))
    return "\n".join(out)


def _bars(row: GradeRow) -> str:
    if row.proba is None:
        return '<span class="check">not in the submission</span>'
    grade = max(range(3), key=lambda k: row.proba[k])
    cells = []
    for k, severity in enumerate(SEVERITIES):
        p, prior = row.proba[k], row.prior[k]
        label = SEVERITY_WORDS[severity]
        cls = ' class="grade"' if k == grade else ""
        cells.append(
            f"<span{cls}>{escape(label)}</span>"
            f'<span class="pair"><meter value="{p:.3f}"></meter>'
            f'<meter class="prior" value="{prior:.3f}"></meter></span>'
            f"<span{cls}>{p:.2f} <small>prior {prior:.2f}</small></span>"
        )
    return '<div class="bars">' + "".join(cells) + "</div>"


def _grade_row(row: GradeRow) -> str:
    crops = []
    for crop in row.crops:
        crops.append(
            _img(crop) if isinstance(crop, Figure) else f'<p class="note">{escape(crop)}</p>'
        )
    notes = list(row.flags)
    if row.on_prior:
        notes.insert(0, "fell back to the class prior: no usable point")
    notes_html = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return (
        f'<tr id="{slug(row.condition)}_{slug(row.level)}">'
        f"<td>{escape(row_name(row.condition, row.level).rsplit(' ', 1)[0])}</td>"
        f"<td>{escape(row.level)}</td>"
        f'<td><div class="crops">{"".join(crops)}</div>'
        f'<p class="note">{escape("; ".join(row.points))}</p></td>'
        f"<td>{_bars(row)}</td>"
        f"<td>{'<ul>' + notes_html + '</ul>' if notes_html else '—'}</td>"
        "</tr>"
    )


def study_page(
    summary: StudySummary,
    sagittal: list[SeriesBlock],
    axial: list[SeriesBlock],
    grades: list[GradeRow],
    flags: list[str],
    cropped: bool,
) -> str:
    """One study's page: its summary, its series with their points, its 25 grades."""
    sid = summary.study_id
    missing = ""
    if summary.missing:
        missing = (
            '<section class="missing" id="missing"><h2>What could not be read</h2><ul>'
            + "".join(f"<li>{escape(m)}</li>" for m in summary.missing)
            + "</ul></section>\n"
        )
    facts = (
        '<dl class="facts">'
        f"<dt>Why check</dt><dd>{_reasons(summary)}</dd>"
        f"<dt>Worst grade</dt><dd>{escape(_worst(summary))}</dd>"
        f"<dt>Lowest confidence</dt><dd>{escape(_confidence(summary))}</dd>"
        f"<dt>Flags raised</dt><dd>{escape(_flags(summary))}</dd>"
        f"<dt>Rows on the prior</dt><dd>{summary.n_prior} of 25</dd>"
        "</dl>"
    )
    known = [
        f"<li><b>{escape(flag_words(c)[0])}</b>: {escape(flag_words(c)[1])}</li>" for c in flags
    ]
    flag_help = f'<ul class="note">{"".join(known)}</ul>' if known else ""
    crop_note = (
        "The crop is the model's own input (its transformer's output, the graded slice), at "
        "its own size."
        if cropped
        else "No model was given: pass one (--model) to see the crops it graded."
    )
    body = [
        '<header><p><a href="../index.html">All studies</a></p>'
        f"<h1>Study {sid}</h1>{facts}</header>",
        "<main>",
        missing,
        '<section id="sagittal"><h2>Located points on the sagittal series</h2>',
        _legend(),
        f'<p class="note">Slices are drawn as the model sees them, shrunk to at most {MAX_SIDE} '
        "pixels, never enlarged. Each point carries its level name.</p>",
        "\n".join(_series(b, flags) for b in sagittal) or "<p>No sagittal series.</p>",
        "</section>",
        '<section id="axial"><h2>The axial slice chosen for each level</h2>',
        "\n".join(_series(b, flags) for b in axial) or "<p>No axial series.</p>",
        "</section>",
        '<section id="grades"><h2>Grades</h2>',
        f'<p class="note">{escape(crop_note)} Bars: the model\'s probability (blue) above '
        "the class prior (grey).</p>",
        flag_help,
        '<table id="rows"><thead><tr><th>Condition</th><th>Level</th><th>Crop graded</th>'
        "<th>Probabilities</th><th>Flags and notes</th></tr></thead><tbody>",
        "\n".join(_grade_row(r) for r in grades),
        "</tbody></table></section>",
        "</main>",
    ]
    return (
        _head(f"Study {sid}: spinecls report", f"../{CSS_NAME}") + "\n".join(body) + "\n" + _foot()
    )


def prior_tuple(prior: dict, condition: str) -> tuple[float, float, float]:
    values = [float(v) for v in prior[condition]]
    total = sum(values)
    return tuple(v / total for v in values)
