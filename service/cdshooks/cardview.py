"""CDS Hooks cards as an EHR shows them, as one HTML page: the look of the CDS Hooks Sandbox's card list (an
indicator stripe, the summary, the source line, the markdown detail, suggestion and link buttons).

Used to check in a browser what a clinician will see, and by the rule authors' previews. Markdown is rendered
without raw HTML (anything in a card's text is escaped), and the page loads nothing from elsewhere.
"""

from __future__ import annotations

from html import escape
from typing import Any

from markdown_it import MarkdownIt

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_COLOURS = {"info": "#0b6efd", "warning": "#e8a317", "critical": "#d1242f"}

STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; background: #f3f4f6; margin: 0; padding: 16px; color: #1f2328; }
h1 { font-size: 18px; margin: 0 0 12px; }
.card { background: #fff; border: 1px solid #d0d7de; border-left: 8px solid var(--stripe); border-radius: 4px;
        padding: 12px 16px; margin-bottom: 14px; max-width: 980px; }
.summary { font-weight: bold; font-size: 16px; margin-bottom: 4px; }
.indicator { display: inline-block; font-size: 11px; text-transform: uppercase; color: #fff; background: var(--stripe);
             border-radius: 3px; padding: 1px 6px; margin-right: 8px; vertical-align: middle; }
.source { font-size: 12px; color: #57606a; margin-bottom: 8px; }
.detail { font-size: 14px; line-height: 1.45; }
.detail table { border-collapse: collapse; margin: 6px 0; }
.detail th, .detail td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; }
.detail th { background: #f6f8fa; }
.actions { margin-top: 10px; }
button { font-size: 13px; margin: 4px 6px 0 0; padding: 6px 10px; border-radius: 4px; cursor: pointer;
         border: 1px solid #1f6feb; background: #1f6feb; color: #fff; }
button.link { background: #fff; color: #1f6feb; }
button.dismiss { background: #fff; color: #57606a; border-color: #d0d7de; }
.empty { color: #57606a; font-style: italic; }
"""


def render_markdown(text: str) -> str:
    return str(_MARKDOWN.render(text))


def card_html(card: dict[str, Any]) -> str:
    indicator = str(card.get("indicator", "info"))
    source = card.get("source") or {}
    label = escape(str(source.get("label", "")))
    if source.get("url"):
        label = f'<a href="{escape(str(source["url"]), quote=True)}">{label}</a>'
    buttons = [
        f'<button class="suggestion" data-uuid="{escape(str(s.get("uuid", "")), quote=True)}">'
        f"{escape(str(s['label']))}</button>"
        for s in card.get("suggestions") or []
    ]
    buttons += [
        f'<button class="link" data-url="{escape(str(link["url"]), quote=True)}">{escape(str(link["label"]))}</button>'
        for link in card.get("links") or []
    ]
    if card.get("overrideReasons"):
        buttons.append('<button class="dismiss">Dismiss (give a reason)</button>')
    return (
        f'<section class="card" data-indicator="{escape(indicator, quote=True)}" '
        f'style="--stripe: {_COLOURS.get(indicator, "#57606a")}">'
        f'<div class="summary"><span class="indicator">{escape(indicator)}</span>{escape(str(card["summary"]))}</div>'
        f'<div class="source">Source: {label}</div>'
        f'<div class="detail">{render_markdown(str(card.get("detail", "")))}</div>'
        f'<div class="actions">{"".join(buttons)}</div>'
        "</section>"
    )


def cards_page(title: str, cards: list[dict[str, Any]]) -> str:
    """A whole HTML page with these cards, or a note that there are none (as an EHR shows nothing)."""
    body = "".join(card_html(c) for c in cards) or '<p class="empty">No cards.</p>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
