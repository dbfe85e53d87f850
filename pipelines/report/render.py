"""Sections -> one self-contained HTML page (inline CSS, figures as data: URIs, no script)
and the same content as Markdown (figures as files beside it)."""
from __future__ import annotations

import base64
import html

from pipelines.report.blocks import Figure, Section, Svg, Table

LONG = 40  # characters: a longer cell may wrap anywhere (URIs, raw records)
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;
 color:#222;margin:0;background:#fafafa}
main{max-width:1240px;margin:0 auto;padding:8px 16px 40px;box-sizing:border-box}
h1{font-size:22px;margin:12px 0 4px}h2{font-size:18px;margin:28px 0 8px;
 border-bottom:2px solid #4c72b0;padding-bottom:2px}
nav{font-size:13px;margin-bottom:8px}nav a{margin-right:12px;color:#4c72b0}
nav a.absent{color:#999}
.alert{background:#fde8e8;border-left:5px solid #c0392b;padding:6px 10px;margin:6px 0;
 font-weight:600}
.ok{background:#e8f6ea;border-left:5px solid #2e8b57;padding:6px 10px;margin:6px 0}
.note{color:#666;font-style:italic}
.scroll{overflow-x:auto;max-width:100%;margin:8px 0}
table{border-collapse:collapse;font-size:12.5px;background:#fff}
caption{text-align:left;font-weight:600;padding:2px 0 4px}
th,td{border:1px solid #ddd;padding:3px 7px;vertical-align:top;overflow-wrap:break-word}
td.long{overflow-wrap:anywhere;min-width:220px;max-width:420px}
th{background:#eef2f8;text-align:left}td.n{text-align:right;white-space:nowrap}
tr:nth-child(even) td{background:#f7f7f7}
figure{margin:10px 0}figure.svg{display:inline-block;vertical-align:top;margin:4px 8px 4px 0}
figure.svg svg{background:#fff;border:1px solid #ddd}
figure img{max-width:100%;height:auto;border:1px solid #ddd;
 background:#fff}figcaption{font-size:12.5px;color:#555}
abbr{text-decoration:underline dotted #999;cursor:help}
code,pre{font:12px ui-monospace,Menlo,Consolas,monospace}
"""


def _cell(v: str) -> str:
    """A cell's text; a short digest carries the full one as its hover title."""
    full = getattr(v, "full", "")
    if full and full != v:
        return f'<abbr title="{html.escape(full)}">{html.escape(v)}</abbr>'
    return html.escape(v)


def _shade(t: Table, r: int, i: int) -> str:
    """A shaded cell's inline background (blue, darker for a larger share)."""
    share = t.shade[r][i] if t.shade and r < len(t.shade) and i < len(t.shade[r]) else None
    if share is None:
        return ""
    return f' style="background:rgba(76,114,176,{0.08 + 0.8 * share:.3f})"'


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = []
    for r, row in enumerate(t.rows):
        cells = "".join(
            f'<td class="n"{_shade(t, r, i)}>{_cell(v)}</td>' if t.numeric and t.numeric[i]
            else f'<td class="long">{_cell(v)}</td>' if len(v) > LONG
            else f"<td{_shade(t, r, i)}>{_cell(v)}</td>" for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    cap = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    return (f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _block_html(b) -> str:
    if isinstance(b, Table):
        return _table_html(b)
    if isinstance(b, Figure):
        uri = "data:image/png;base64," + base64.b64encode(b.png).decode("ascii")
        return (f'<figure id="fig-{html.escape(b.name)}"><img src="{uri}" alt="'
                f'{html.escape(b.alt)}"><figcaption>{html.escape(b.caption)}</figcaption>'
                "</figure>")
    if isinstance(b, Svg):
        return (f'<figure id="fig-{html.escape(b.name)}" class="svg" role="img" aria-label="'
                f'{html.escape(b.alt)}">{b.svg}<figcaption>{html.escape(b.caption)}'
                "</figcaption></figure>")
    if b.kind == "code":
        return f"<pre>{html.escape(b.text)}</pre>"
    cls = f' class="{b.kind}"' if b.kind != "p" else ""
    return f"<p{cls}>{html.escape(b.text)}</p>"


def to_html(title: str, sections: list[Section]) -> str:
    nav = " ".join(f'<a href="#{s.id}"' + ("" if s.present else ' class="absent"')
                   + f">{html.escape(s.title)}</a>" for s in sections)
    parts = [f'<section id="{s.id}" data-present="{str(s.present).lower()}"><h2>'
             f'{html.escape(s.title)}</h2>' + "\n".join(_block_html(b) for b in s.blocks)
             + "</section>" for s in sections]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{html.escape(title)}</h1><nav>{nav}</nav>\n" + "\n".join(parts)
            + "\n</main></body></html>\n")


# Markdown passes raw HTML through, and data values (categories, file names, errors) reach
# the report: every text is escaped, so none of it becomes a tag, an entity, a link or a
# code span. "<" "&" ">" become entities (no tag, no autolink); "[" "]" (links, images),
# "`", "|" (table cells) and "\\" are backslash-escaped. Emphasis marks are left alone.
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MD_SPECIAL = set("\\`[]|")


def md_escape(text: str) -> str:
    """``text`` as literal Markdown text on one line (no HTML, links or code spans)."""
    out = []
    for ch in str(text).replace("\r", " ").replace("\n", " "):
        out.append(_MD_ENTITIES.get(ch) or ("\\" + ch if ch in _MD_SPECIAL else ch))
    return "".join(out)


def _md_cell(v: str) -> str:
    return md_escape(v)


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in ``text`` (it cannot close early)."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _block_md(b, figure_dir: str) -> str:
    if isinstance(b, Table):
        lines = [f"*{md_escape(b.caption)}*", ""] if b.caption else []
        lines.append("| " + " | ".join(_md_cell(c) or " " for c in b.columns) + " |")
        lines.append("|" + "|".join("---:" if b.numeric and b.numeric[i] else "---"
                                    for i in range(len(b.columns))) + "|")
        lines += ["| " + " | ".join(_md_cell(v) for v in r) + " |" for r in b.rows]
        return "\n".join(lines)
    if isinstance(b, (Figure, Svg)):
        ext = "svg" if isinstance(b, Svg) else "png"
        return (f"![{md_escape(b.alt)}]({figure_dir}/{b.name}.{ext})"
                + (f"\n*{md_escape(b.caption)}*" if b.caption else ""))
    if b.kind == "alert":
        return f"> **{md_escape(b.text)}**"
    if b.kind == "code":
        fence = _fence(b.text)
        return f"{fence}\n{b.text}\n{fence}"
    return f"*{md_escape(b.text)}*" if b.kind == "note" else md_escape(b.text)


def to_markdown(title: str, sections: list[Section], figure_dir: str = "figures") -> str:
    out = [f"# {md_escape(title)}", ""]
    for s in sections:
        out += [f"## {md_escape(s.title)}", ""]
        for b in s.blocks:
            out += [_block_md(b, figure_dir), ""]
    return "\n".join(out)
