"""Headless Chromium (Debian's `chromium` + `chromium-driver`) driven by selenium, for the page tests and the
screenshots in the closing notes: page width, anchors, and every network request a page makes.

Every host name resolves to nothing (``--host-resolver-rules``), so a page that tries the network makes the
request (it is counted from Chrome's performance log) but never reaches the internet.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

LOCAL_SCHEMES = ("data:", "file:", "about:", "chrome:", "blob:")


def available() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


def open_browser(width: int, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_window_size(width, height)
    return driver


@dataclass
class PageFacts:
    inner_width: int
    scroll_width: int
    anchors: list[str]
    missing_anchors: list[str]
    network_requests: list[str]
    title: str


def visit(driver, page: Path) -> PageFacts:
    """Load ``page`` and return its width, its in-page links and the non-local requests it made."""
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get(page.resolve().as_uri())
    driver.execute_script("return document.readyState")
    facts = driver.execute_script(
        """
        const anchors = [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1));
        return {inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
                anchors: anchors, missing: anchors.filter(id => !document.getElementById(decodeURIComponent(id))),
                title: document.title};
        """
    )
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith(LOCAL_SCHEMES):
                requests.append(url)
    return PageFacts(inner_width=facts["inner"], scroll_width=facts["scroll"], anchors=facts["anchors"],
                     missing_anchors=facts["missing"], network_requests=requests, title=facts["title"])


def screenshot(page: Path, target: Path, width: int, height: int = 900) -> PageFacts:
    """The first screen of ``page`` at ``width`` px as PNG, and the page's facts."""
    driver = open_browser(width, height)
    try:
        facts = visit(driver, page)
        driver.save_screenshot(str(target))
        return facts
    finally:
        driver.quit()


if __name__ == "__main__":  # python tests/browser.py PAGE OUT_PREFIX: screenshots at 1400 and 1024 px
    import sys

    page, prefix = Path(sys.argv[1]), sys.argv[2]
    for w in (1400, 1024):
        f = screenshot(page, Path(f"{prefix}-{w}.png"), w)
        print(w, f"inner={f.inner_width} scroll={f.scroll_width} anchors={len(f.anchors)} "
                 f"missing={len(f.missing_anchors)} requests={len(f.network_requests)}", f.network_requests[:20])
