"""Headless Chromium (Debian's) driven by Playwright, confined to loopback, for the console's tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, Route, sync_playwright

from tests import servers
from tests.api.conftest import REPO

ARTIFACTS = REPO / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Browser:
    context: BrowserContext
    page: Page
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # requests for anything off this machine

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@contextmanager
def chromium(profile_dir: Path, width: int = 1280, height: int = 800) -> Iterator[Browser]:
    executable = servers.require("chromium", "Chromium (for the web console's browser tests)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir),  # a fresh profile: no cookies or storage from another run
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": width, "height": height},
            locale="zh-CN",
            timezone_id="UTC",  # the console must show site time whatever the browser's zone
        )
        page = context.pages[0] if context.pages else context.new_page()
        browser = Browser(context, page)

        def only_loopback(route: Route) -> None:
            url = route.request.url
            host = urlsplit(url).hostname or ""
            if url.startswith(("data:", "blob:")) or host in LOOPBACK:
                route.continue_()
            else:
                browser.blocked.append(url)
                route.abort()

        context.route("**/*", only_loopback)
        page.on("pageerror", lambda error: browser.page_errors.append(str(error)))
        try:
            yield browser
        finally:
            context.close()


def log_in(browser: Browser, base: str, token: str) -> None:
    """A fresh login (cookies are per host, not per port: servers of other tests would share them)."""
    browser.context.clear_cookies()
    page = browser.page
    page.goto(f"{base}/")
    page.wait_for_selector("#login-view:not([hidden])")
    page.fill("#login-token", token)
    page.click("#login-submit")
    page.wait_for_selector("#nav:not([hidden])")
