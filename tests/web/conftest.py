"""The pages in headless Chromium: the fixtures of ``tests/web/browser.py`` (``pages``, ``browser``)."""

from tests.web.browser import browser, pages

__all__ = ["browser", "pages"]
