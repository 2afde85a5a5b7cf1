"""GraphiQL (GET /graphql) in a real headless Chromium, offline: every file comes from this
server, under the docs CSP, with no violation (its fonts are data: URIs in its stylesheet)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Route, expect

from tests.console.conftest import Console

OpenConsole = Callable[..., Console]


def test_graphiql_renders_offline_with_its_fonts(open_console: OpenConsole) -> None:
    console = open_console()
    page = console.page
    origin = console.server.url
    elsewhere: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith(origin) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    page.goto(f"{origin}/graphql")
    expect(page.locator(".graphiql-container")).to_be_visible()
    expect(page.locator(".graphiql-query-editor .CodeMirror")).to_be_visible()
    # The interface font is one of the stylesheet's data: fonts; it loads only if CSP allows.
    loaded = page.evaluate("document.fonts.load('16px Roboto').then(faces => faces.length)")
    assert loaded >= 1
    assert page.evaluate("document.fonts.check('16px Roboto')")
    assert elsewhere == []
    # The fixture fails the test on any CSP violation or script error it saw.
