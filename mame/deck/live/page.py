"""The pages the live deck serves (``mame.deck.live.server``): the deck with a small live badge and the script that reloads
it, the page shown while the first render runs, and the page that shows a failed render's error.

Every page carries the render ``version`` it shows and listens to ``/events`` (server-sent events): when the
server's version differs, the page reloads itself (reveal.js keeps the slide: the deck's URL holds it, ``hash``).
"""

from __future__ import annotations

import html
import json

_SCRIPT = """<script>
(function () {
  const shown = %(version)d, badge = document.getElementById("mame-live-state");
  const events = new EventSource("/events");
  events.addEventListener("version", (e) => {
    const now = JSON.parse(e.data);
    if (now.version !== shown) { events.close(); location.reload(); return; }
    const says = {rendering: "rendering…", ok: "live", failed: "live: the last render failed", starting: "starting"};
    if (badge) badge.textContent = says[now.status] || now.status;
  });
})();
</script>"""

_BADGE = """<div id="mame-live" style="position:fixed;left:8px;bottom:6px;z-index:2000;font:13px/1.4 sans-serif;
 background:rgba(255,255,255,.85);color:#333;padding:2px 8px;border-radius:4px;box-shadow:0 0 3px #999">
 <span id="mame-live-state">live</span> · rendered %(rendered_at)s · <a href="/deck.pdf" target="_blank">PDF</a>
</div>"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%(title)s</title>
<style>body{font:16px/1.5 sans-serif;margin:2em auto;max-width:62em;padding:0 1em;color:#222}
pre{background:#f4f4f4;padding:1em;overflow-x:auto;font-size:13px}.where{background:#fff3cd;padding:.6em 1em}
h1{font-size:1.4em}</style></head>
<body>
<h1>%(title)s</h1>
%(body)s
<p><small>Server: <span id="mame-live-state">live</span></small></p>
%(script)s
</body></html>
"""


def script(version: int) -> str:
    return _SCRIPT % {"version": version}


def live_deck(deck_html: str, version: int, rendered_at: str) -> str:
    """The deck with the badge (state, when rendered, the PDF link) and the reload script before ``</body>``."""
    extra = _BADGE % {"rendered_at": html.escape(rendered_at or "?")} + script(version)
    at = deck_html.rfind("</body>")
    return deck_html + extra if at < 0 else deck_html[:at] + extra + deck_html[at:]


def waiting(version: int, doing: str) -> str:
    body = f"<p>{html.escape(doing)} This page shows the deck as soon as it is ready.</p>"
    return _PAGE % {"title": "Rendering the deck…", "body": body, "script": script(version)}


def failed(version: int, error: dict) -> str:
    """A failed render: the error, the template line where Jinja raised it, the traceback's last lines."""
    where = error.get("where")
    parts = [f"<p><b>{html.escape(error.get('type', 'Error'))}</b>: {html.escape(error.get('message', ''))}</p>"]
    if where:
        parts.append(f'<p class="where">in template <code>{html.escape(where["template"])}</code>, '
                     f'line {where["line"]}: <code>{html.escape(where.get("text", ""))}</code></p>')
    if error.get("traceback"):
        parts.append("<pre>" + html.escape("\n".join(error["traceback"])) + "</pre>")
    parts.append("<p>The server goes on: the next render that succeeds replaces this page.</p>")
    return _PAGE % {"title": "The deck failed to render", "body": "\n".join(parts), "script": script(version)}


def event(version: int, status: str) -> str:
    """One server-sent event with the server's state."""
    return f"event: version\ndata: {json.dumps({'version': version, 'status': status})}\n\n"
