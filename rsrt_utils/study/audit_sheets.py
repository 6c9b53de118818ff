"""The audit sheet rendered for people: an HTML page and PNG pages, both made from the audit items (audit_items.json)."""

from __future__ import annotations

import html
from pathlib import Path

from matplotlib.figure import Figure

from .audit import SCORING_INSTRUCTIONS, AuditItem, AuditSheet, shown_fields
from .figures import load_thumbnail, save_figure, wrap

_HTML_STYLE = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin-bottom:4px} .coverage{color:#555;font-style:italic;margin-top:0}
.item{display:flex;gap:20px;border-top:2px solid #ccc;padding:16px 0;page-break-inside:avoid}
.left{flex:0 0 320px} .left img{width:300px;height:300px;object-fit:contain;image-rendering:auto;border:1px solid #999}
.nopixels{width:300px;height:120px;background:#eee;display:flex;align-items:center;justify-content:center;color:#555}
.meta{font-size:14px;margin:6px 0} .human{font-size:13px;padding-left:18px} .human li{margin-bottom:3px}
table{border-collapse:collapse;font-size:13px;width:100%} th,td{border:1px solid #ccc;padding:5px;vertical-align:top;text-align:left}
th{background:#f3f3f3} td.n{width:24px;text-align:center;font-weight:bold}
pre{white-space:pre-wrap;background:#fafafa;border:1px solid #ddd;padding:10px;font-size:12px}
mark{background:#ffd6a5} .checks{font-size:13px;margin:0 0 6px} .ok{color:#1a7f37;font-weight:bold}
.bad{color:#c62828;font-weight:bold} .pixelnote{background:#fff8e1;border:1px solid #f0c36d;padding:8px;font-size:14px}
"""


def _class_badge(check: dict) -> str:
    if "class_word_present" not in check:
        return ""
    own = ('<span class="ok">scene class named</span>' if check["class_word_present"]
           else '<span class="bad">scene class NOT named</span>')
    others = check["other_classes_named"]
    return own + (f' <span class="bad">names other classes: {html.escape(", ".join(others))}</span>' if others else "")


def _item_html(number: int, item: AuditItem) -> str:
    e = html.escape
    uri = item.picture
    picture = f'<img src="{uri}" alt="{e(item.image_id)}">' if uri else '<div class="nopixels">no pixels for this image</div>'
    humans = "".join(f"<li>{e(c)}</li>" for c in item.human_captions) or "<li><em>none</em></li>"
    check = item.checks
    fields = shown_fields(item.variants)
    rows = "".join(f'<tr><td class="n">{k}</td>' + "".join(
        f"<td>{e(v.text(f)) if f in v.present_fields() else ''}</td>" for f in fields) + "</tr>"
                   for k, v in enumerate(item.variants, start=1))
    header = "<tr><th>#</th>" + "".join(f"<th>{e(f if len(fields) > 1 else 'description')}</th>" for f in fields) + "</tr>"
    words = " ".join(f"<mark>{e(w)}</mark>" for w in check["unsupported_words"]) or "none"
    checks = (f'<p class="checks">{_class_badge(check)}<br>{check["n_unsupported_words"]} word(s) that no human caption '
              f'uses: {words}</p>')
    return (f'<section class="item" id="item-{number}"><div class="left">{picture}'
            f'<p class="meta"><b>{number}. {e(item.image_id)}</b><br>scene class: {e(item.scene_class)}</p>'
            f'<p class="meta">Human captions:</p><ol class="human">{humans}</ol></div>'
            f'<div class="right">{checks}<table>{header}{rows}</table></div></section>')


def write_audit_sheet_html(sheet: AuditSheet, path: Path | str) -> Path:
    """A self-contained HTML audit sheet of the sheet's data: images embedded as data URIs, inline CSS, all text
    escaped; words no human caption uses are marked and a badge says whether the text names the image's scene class."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    e = html.escape
    body = "\n".join(_item_html(n, item) for n, item in enumerate(sheet.items, start=1))
    document = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(sheet.title)}</title>'
                f"<style>{_HTML_STYLE}</style></head><body>\n<h1>{e(sheet.title)}</h1>\n"
                f'<p class="coverage">Coverage: {e(sheet.coverage)} — {len(sheet.items)} image(s) in this sheet</p>\n'
                + (f'<p class="pixelnote">{e(sheet.pixel_note)}</p>\n' if sheet.pixel_note else "") +
                f"<details><summary>Scoring instructions</summary><pre>{e(SCORING_INSTRUCTIONS)}</pre></details>\n"
                f"{body}\n</body></html>\n")
    path.write_text(document, encoding="utf-8")
    return path


_TEXT_WIDTH = 150


_FIELD_MAX_LINES = {"one_sentence": 2, "feature": 3, "caption": 5}


_SHEET_FONT = 8.0


_LINE_PT = _SHEET_FONT * 1.3


def _check_line(item: AuditItem) -> str:
    """One line of automatic checks: scene class named or not, other classes named, unsupported words."""
    check = item.checks
    parts = []
    if "class_word_present" in check:
        parts.append("scene class named" if check["class_word_present"] else "scene class NOT named")
        if check["other_classes_named"]:
            parts.append("names other classes: " + ", ".join(check["other_classes_named"]))
    parts.append(f"{check['n_unsupported_words']} word(s) no human caption uses: " + ", ".join(check["unsupported_words"][:12])
                 + (" ..." if check["n_unsupported_words"] > 12 else ""))
    return "Checks: " + "; ".join(parts)


def _item_lines(item: AuditItem) -> list[tuple[str, bool]]:
    """(text, bold) lines for one item: its human captions, the automatic checks, then each variant's fields (long
    ones cut)."""
    lines: list[tuple[str, bool]] = [("Human captions", True)]
    lines += [(wrap(f"• {c}", _TEXT_WIDTH, 1), False) for c in item.human_captions] or [("(none)", False)]
    lines.extend((line, True) for line in wrap(_check_line(item), _TEXT_WIDTH, 2).split("\n"))
    for k, variant in enumerate(item.variants, start=1):
        lines.append((f"Variant {k}" if variant.is_structured else f"Description {k}", True))
        for name in variant.present_fields():
            text = wrap(f"{name}: {variant.text(name)}", _TEXT_WIDTH, _FIELD_MAX_LINES[name])
            lines.extend(("    " + line, False) for line in text.split("\n"))
    return lines


def plot_audit_sheet(sheet: AuditSheet, path: Path | str, per_page: int = 4) -> list[Path]:
    """The audit sheet as PNG pages (`<stem>_page01.png`, ...): image left, human captions, automatic checks and
    variants right. Long fields are cut with an ellipsis; the HTML sheet has the full text.
    """
    items, pixel_note = sheet.items, sheet.pixel_note
    if per_page < 1:
        raise ValueError(f"per_page must be >= 1, got {per_page}")
    if not items:
        raise ValueError("no audit items to plot; build them with build_audit_items(...)")
    path = Path(path)
    pages = [items[i:i + per_page] for i in range(0, len(items), per_page)]
    written = []
    for number, page in enumerate(pages, start=1):
        texts = [_item_lines(item) for item in page]
        heights = [max(2.8, len(lines) * _LINE_PT / 72 + 0.3) for lines in texts]
        fig = Figure(figsize=(15.0, sum(heights) + 0.8), layout="constrained")
        grid = fig.add_gridspec(len(page), 2, width_ratios=[1, 4.6], height_ratios=heights)
        for row, (item, lines) in enumerate(zip(page, texts)):
            _audit_row(fig.add_subplot(grid[row, 0]), fig.add_subplot(grid[row, 1]), item, lines)
        fig.suptitle(f"Caption audit sheet — page {number} of {len(pages)} (long fields cut; full text in the HTML sheet)"
                     + (f"\n{wrap(pixel_note, 150)}" if pixel_note else ""), fontsize=12, fontweight="bold")
        target = path.with_name(f"{path.stem}_page{number:02d}.png")
        save_figure(fig, target)
        written.append(target)
    return written


def _audit_row(image_ax, text_ax, item: AuditItem, lines: list[tuple[str, bool]]) -> None:
    pixels = load_thumbnail(item.image_path)
    if pixels is None:
        image_ax.text(0.5, 0.5, "no pixels\nfor this image", ha="center", va="center", transform=image_ax.transAxes)
    else:
        image_ax.imshow(pixels)
    image_ax.set_xticks([])
    image_ax.set_yticks([])
    image_ax.set_title(f"{item.image_id}\n[{item.scene_class}]", fontsize=9)
    text_ax.set_axis_off()
    for n, (line, bold) in enumerate(lines):
        text_ax.annotate(line, (0.0, 1.0), xycoords="axes fraction", xytext=(0, -n * _LINE_PT), textcoords="offset points",
                         va="top", ha="left", fontsize=_SHEET_FONT, fontweight="bold" if bold else "normal",
                         annotation_clip=False)
