"""Headers every response carries so that a browser keeps Kefu's pages to themselves: no framing
by other sites, no scripts but Kefu's own files, no guessing of content types, no full URLs (which
may hold a phone number) leaked to other sites in the Referer."""

from __future__ import annotations

from flask import Flask, Response

# Scripts only from Kefu's own files (the pages have no inline script; the data blocks are
# type="application/json", which browsers never run). Styles may be inline: the BPMN viewer and
# modeler style their SVG elements through attributes.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def install(app: Flask) -> None:
    @app.after_request
    def _secure(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response
