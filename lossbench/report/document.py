"""One report, two renderings: a small document model written once, rendered to HTML and to Markdown.

Every string that reaches a renderer is treated as data: the HTML renderer escapes it (class names, run names
and paths come from users' files and configs), the Markdown renderer escapes Markdown and HTML syntax.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class B:
    """Bold inline text."""

    text: str


@dataclass(frozen=True)
class Code:
    """Inline code (commands, keys)."""

    text: str


Inline = str | B | Code
Text = list[Inline]


@dataclass
class Heading:
    text: str
    level: int = 2

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.text.lower()).strip("-")


@dataclass
class Para:
    parts: Text


@dataclass
class Bullets:
    items: list[Text]


@dataclass
class Table:
    header: list[str]
    rows: list[list[Inline]]
    caption: str | None = None
    align_right_from: int = 1  # columns from this index hold numbers


@dataclass
class Image:
    src: str  # relative to the report folder
    alt: str
    caption: str = ""


@dataclass
class CodeBlock:
    text: str


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> None:
        self.blocks.extend(blocks)


# ---------------------------------------------------------------------------------------------------- HTML


def _html_inline(part: Inline) -> str:
    if isinstance(part, B):
        return f"<strong>{html.escape(part.text)}</strong>"
    if isinstance(part, Code):
        return f"<code>{html.escape(part.text)}</code>"
    return html.escape(str(part))


def _html_text(parts: Text) -> str:
    return "".join(_html_inline(p) for p in parts)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1180px;margin:2rem auto;
padding:0 1rem;color:#1b1f24;line-height:1.5}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3rem}h2{border-bottom:1px solid #d0d7de;margin-top:2.2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}caption{caption-side:top;
text-align:left;font-weight:600;padding:.3rem 0}figure{margin:1rem 0}figure img{max-width:100%;
border:1px solid #eee}figcaption{font-size:.9rem;color:#57606a}code{background:#f6f8fa;padding:.1rem .3rem;
border-radius:4px}pre{background:#f6f8fa;padding:.6rem;overflow-x:auto}nav ul{columns:2}
"""


def to_html(doc: Document) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(doc.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(doc.title)}</h1>",
    ]
    headings = [b for b in doc.blocks if isinstance(b, Heading) and b.level == 2]
    if headings:
        out.append("<nav><ul>")
        out += [f'<li><a href="#{h.anchor}">{html.escape(h.text)}</a></li>' for h in headings]
        out.append("</ul></nav>")
    for block in doc.blocks:
        if isinstance(block, Heading):
            out.append(f'<h{block.level} id="{block.anchor}">{html.escape(block.text)}</h{block.level}>')
        elif isinstance(block, Para):
            out.append(f"<p>{_html_text(block.parts)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{_html_text(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, CodeBlock):
            out.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
        elif isinstance(block, Image):
            out.append(
                f'<figure><img src="{html.escape(block.src)}" alt="{html.escape(block.alt)}">'
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Table):
            rows = []
            if block.caption:
                rows.append(f"<caption>{html.escape(block.caption)}</caption>")
            rows.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in block.header) + "</tr>")
            for row in block.rows:
                cells = [
                    f"<td{' class=num' if j >= block.align_right_from else ''}>{_html_inline(c)}</td>"
                    for j, c in enumerate(row)
                ]
                rows.append("<tr>" + "".join(cells) + "</tr>")
            out.append("<table>" + "".join(rows) + "</table>")
        else:  # pragma: no cover - a new block type must get a rendering
            raise TypeError(f"unknown block {type(block).__name__}")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------ Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def md_escape(text: str) -> str:
    """Plain text for Markdown: HTML made inert, Markdown syntax characters backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")


def _md_inline(part: Inline) -> str:
    if isinstance(part, B):
        return f"**{md_escape(part.text)}**"
    if isinstance(part, Code):
        fence = "``" if "`" in part.text else "`"
        return f"{fence}{part.text}{fence}"
    return md_escape(part)


def _md_text(parts: Text) -> str:
    return "".join(_md_inline(p) for p in parts)


def to_markdown(doc: Document) -> str:
    out = [f"# {md_escape(doc.title)}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + md_escape(block.text), ""]
        elif isinstance(block, Para):
            out += [_md_text(block.parts), ""]
        elif isinstance(block, Bullets):
            out += [f"- {_md_text(i)}" for i in block.items] + [""]
        elif isinstance(block, CodeBlock):
            out += ["```", block.text, "```", ""]
        elif isinstance(block, Image):
            out += [f"![{md_escape(block.alt)}]({block.src})", "", f"*{md_escape(block.caption)}*", ""]
        elif isinstance(block, Table):
            if block.caption:
                out += [f"**{md_escape(block.caption)}**", ""]
            out.append("| " + " | ".join(md_escape(h) for h in block.header) + " |")
            out.append(
                "|"
                + "|".join("---:" if j >= block.align_right_from else "---" for j in range(len(block.header)))
                + "|"
            )
            out += ["| " + " | ".join(_md_inline(c) for c in row) + " |" for row in block.rows]
            out.append("")
        else:  # pragma: no cover
            raise TypeError(f"unknown block {type(block).__name__}")
    return "\n".join(out).rstrip() + "\n"
