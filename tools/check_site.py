"""Check the built site, as it ships, in a real headless browser (Chromium, driven by Playwright).

Usage: python tools/check_site.py [_build/html] [--screenshots DIR] [--pages GLOB ...]

It serves the real _build/html on 127.0.0.1 (nothing is copied or rewritten),
blocks every request that leaves that server, and loads every page at two
widths: desktop (1280 x 900, scrollbars that take room, as on Windows and
Linux) and phone (390 x 844, touch, mobile layout, no scrollbars drawn, as
on a phone). A page fails on:

- any attempt to load something from elsewhere (the site must work offline),
  and any local file that is missing (HTTP error);
- a console error or an uncaught script error;
- math: a formula MathJax did not typeset, a TeX error, an undefined macro, or
  TeX left as text outside code (``\\(``, ``$$``, ``\\begin{``, ``\\frac``, ...);
- a widget area (an embedded ipywidget view) with no rendered widget;
- a Python traceback in the page;
- layout of math, with every dropdown opened: a formula (displayed or inline)
  wider than its box that does not show it scrolls (a scrollbar that takes
  room, or the faded edge that _static/math-overflow.js and derivations.css
  give it), that is cut off by a box around it, or that runs past the screen;
  a formula box that scrolls although the formula fits (a needless
  scrollbar); a page that scrolls sideways.

A full-page screenshot of every page at each width goes to DIR/desktop and
DIR/phone (default _build/screenshots) for a person to look at.

Chromium is Debian's (``apt-get install chromium``); Playwright's own browser
download is not used.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import http.server
import multiprocessing
import re
import shutil
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout


@dataclass(frozen=True)
class Viewport:
    name: str
    width: int
    height: int
    mobile: bool


VIEWPORTS = (Viewport("desktop", 1280, 900, False), Viewport("phone", 390, 844, True))
SETTLE_TIMEOUT_MS = 30_000
REDIRECT = re.compile(r'<meta http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.IGNORECASE)

# Runs in the page once MathJax and the widgets are done; returns what it finds.
INSPECT = r"""
() => {
  const found = {errors: [], layout: []};
  // A formula is named by its TeX (MathJax keeps it with each typeset formula), else by its text.
  const sources = new Map();
  for (const item of (window.MathJax?.startup?.document?.math || [])) sources.set(item.typesetRoot, item.math);
  const describe = (el) => {
    const container = el && el.closest('mjx-container');
    const tex = (container && sources.get(container)) || el?.closest('.math')?.textContent || el?.textContent || '';
    return tex.replace(/\s+/g, ' ').trim().slice(0, 90);
  };
  const px = (v) => parseFloat(v) || 0;
  const scrolls = (style) => ['auto', 'scroll'].includes(style.overflowX);

  // --- math: typeset at all, errors, undefined macros
  const containers = [...document.querySelectorAll('mjx-container')];
  const display = containers.filter((c) => c.getAttribute('display') === 'true');
  const inline = containers.filter((c) => c.getAttribute('display') !== 'true');
  for (const box of document.querySelectorAll('.math')) {
    if (!box.querySelector('mjx-container') && !box.closest('mjx-container'))
      found.errors.push(`formula not typeset: ${describe(box)}`);
  }
  for (const container of containers) {
    const bad = container.querySelector('[data-mjx-error], mjx-merror');
    if (bad) {
      const message = (bad.getAttribute('data-mjx-error') || bad.textContent).slice(0, 120);
      found.errors.push(`TeX error: ${message}: ${describe(container)}`);
    }
  }
  // An undefined macro is drawn as its name in red (MathJax's noundefined); the copy for
  // screen readers holds it as text.
  for (const text of document.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]')) {
    if (/^\\[A-Za-z]+$/.test(text.textContent.trim()))
      found.errors.push(`undefined TeX macro ${text.textContent.trim()}: ${describe(text.closest('mjx-container'))}`);
  }

  // --- TeX left as text: text nodes outside code, scripts and typeset math
  const skip = 'script, style, pre, code, kbd, samp, mjx-container, .highlight, textarea, [hidden]';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = /(\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\end\{|\\[A-Za-z]{2,})/;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    const match = node.textContent.match(raw);
    if (match && parent.getClientRects().length) {
      const at = node.textContent.indexOf(match[0]);
      const around = node.textContent.slice(Math.max(0, at - 30), at + 40).replace(/\s+/g, ' ');
      found.errors.push(`TeX shown as text: ...${around}...`);
    }
  }

  // --- tracebacks
  for (const output of document.querySelectorAll('.output.traceback, .output.error'))
    found.errors.push(`error output: ${output.textContent.trim().slice(0, 120)}`);
  if (document.body.innerText.includes('Traceback (most recent call last)'))
    found.errors.push('a Python traceback is shown');

  // --- widgets: each embedded view must have rendered something visible
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  let widgets = 0;
  for (const view of views) {
    const area = view.previousElementSibling;
    const rendered = area && area.classList.contains('widget-subarea') &&
      [...area.querySelectorAll('*')].some((el) => {
        const r = el.getBoundingClientRect();
        return r.width > 0 && r.height > 0;
      });
    if (rendered) widgets += 1;
    else found.errors.push(`blank widget: model ${JSON.parse(view.textContent).model_id}`);
  }

  // --- layout of every formula. Walking out from the formula: its own box (the
  // mjx-container or the .math around it) may scroll, and then must show that it
  // does when the formula is wider than it, and must not scroll when it is not;
  // any box around it that hides overflow must not cut it; with neither, the
  // formula must not run past the screen.
  const viewportWidth = document.documentElement.clientWidth;
  for (const container of containers) {
    const math = container.querySelector('mjx-math');
    if (!math || !container.getClientRects().length) continue;
    const kind = display.includes(container) ? 'displayed' : 'inline';
    const content = math.getBoundingClientRect();
    const own = [container, container.closest('.math')];
    let settled = false;
    for (let el = container; el && el !== document.body && !settled; el = el.parentElement) {
      const style = getComputedStyle(el);
      const r = el.getBoundingClientRect();
      const left = r.left + px(style.borderLeftWidth), right = r.right - px(style.borderRightWidth);
      const cutY = ['hidden', 'clip'].includes(style.overflowY)
        && (content.top < r.top - 1 || content.bottom > r.bottom + 1);
      const box = `<${el.tagName.toLowerCase()} class="${el.className}">`;
      const name = `${kind === 'inline' ? 'an' : 'a'} ${kind} formula`;
      if (scrolls(style)) {
        settled = true;
        if (!own.includes(el)) break;  // inside a wider box that scrolls (a table, say)
        const overflow = el.scrollWidth - el.clientWidth;
        const room = el.clientWidth - px(style.paddingLeft) - px(style.paddingRight);
        const wider = content.width > room + 1;
        const bar = el.offsetHeight - el.clientHeight - px(style.borderTopWidth) - px(style.borderBottomWidth);
        const fade = [style.maskImage, style.webkitMaskImage].some((mask) => mask && mask !== 'none');
        if (overflow > 1 && !wider)
          found.layout.push(
            `needless scrollbar on ${name} (it fits; ${overflow}px of hidden overflow): ${describe(container)}`);
        if (wider && bar <= 0 && !fade)
          found.layout.push(`${kind} formula ${Math.round(content.width - room)}px wider than its box`
            + ` scrolls with no visible sign: ${describe(container)}`);
        if (cutY)
          found.layout.push(`${kind} formula cut off at the top or bottom: ${describe(container)}`);
      } else if (['hidden', 'clip'].includes(style.overflowX)
                 && (content.left < left - 1 || content.right > right + 1)) {
        settled = true;
        const cut = Math.round(Math.max(content.right - right, left - content.left));
        found.layout.push(`${kind} formula clipped by ${box} (${cut}px cut off): ${describe(container)}`);
      } else if (cutY) {
        settled = true;
        found.layout.push(`${kind} formula clipped at the top or bottom by ${box}: ${describe(container)}`);
      }
    }
    if (!settled && content.right > viewportWidth + 1)
      found.layout.push(`${kind} formula runs ${Math.round(content.right - viewportWidth)}px past the screen edge`
        + `: ${describe(container)}`);
  }

  // --- the page itself must not scroll sideways
  const page = document.documentElement.scrollWidth - document.documentElement.clientWidth;
  if (page > 1) found.layout.push(`the page scrolls sideways by ${page}px`);

  found.counts = {display: display.length, inline: inline.length, widgets, views: views.length};
  return found;
}
"""

# Resolves when MathJax has typeset the page; at once where it is absent or failed to load (INSPECT reports that).
MATHJAX_DONE = """
() => (window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? Promise.race([MathJax.startup.promise.then(() => true),
                  new Promise((done) => setTimeout(() => done(false), 30000))])
  : null
"""
# Opens every collapsed block (solutions, hidden cells), so that the formulas in them are measured
# too; COLLAPSE closes them again for the screenshot.
EXPAND = """
() => {
  for (const el of document.querySelectorAll('.toggle-hidden')) {
    el.dataset.checkOpened = 'toggle';
    el.classList.remove('toggle-hidden');
  }
  for (const el of document.querySelectorAll('details:not([open])')) {
    el.dataset.checkOpened = 'details';
    el.open = true;
  }
}
"""
COLLAPSE = """
() => {
  for (const el of document.querySelectorAll('[data-check-opened]')) {
    if (el.dataset.checkOpened === 'toggle') el.classList.add('toggle-hidden'); else el.open = false;
    delete el.dataset.checkOpened;
  }
}
"""
# True when every embedded widget view has a rendered area before it (or there are none).
WIDGETS_DONE = """
() => [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')]
  .every((view) => view.previousElementSibling && view.previousElementSibling.classList.contains('widget-subarea')
                   && view.previousElementSibling.childElementCount > 0)
"""


@dataclass
class Report:
    """What one page showed at one width."""

    page: str
    viewport: str
    problems: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)


def serve(site: Path) -> http.server.ThreadingHTTPServer:
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("no Chromium found: install it (Debian: apt-get install chromium)")


def check_page(browser: Browser, base: str, relative: str, viewport: Viewport, shot: Path) -> Report:
    report = Report(relative, viewport.name)
    context = browser.new_context(
        viewport={"width": viewport.width, "height": viewport.height},
        is_mobile=viewport.mobile, has_touch=viewport.mobile, device_scale_factor=2 if viewport.mobile else 1,
        service_workers="block",
    )

    def route(route: Route) -> None:
        url = route.request.url
        if url.startswith(base + "/"):
            route.continue_()
        else:
            report.problems.append(f"external request blocked: {route.request.resource_type} {url}")
            route.abort("blockedbyclient")

    context.route("**/*", route)
    page: Page = context.new_page()
    page.on("console", lambda message: message.type == "error" and not blocked_noise(message.text)
            and report.problems.append(f"console error: {message.text[:300]} ({message.location.get('url', '')})"))
    page.on("pageerror", lambda error: report.problems.append(f"script error: {str(error)[:300]}"))
    pending: set[str] = set()  # requests in flight
    page.on("request", lambda request: pending.add(request.url))
    page.on("requestfinished", lambda request: pending.discard(request.url))
    page.on("requestfailed", lambda request: pending.discard(request.url))
    missing: set[str] = set()
    page.on("response", lambda response: response.status >= 400 and not missing.add(response.url)
            and report.problems.append(f"HTTP {response.status} for {response.url.removeprefix(base)}"))
    page.on("requestfailed", lambda request: request.url.startswith(base) and request.url not in missing
            and report.problems.append(f"request failed: {request.url.removeprefix(base)} ({request.failure})"))
    try:
        page.goto(f"{base}/{relative}", wait_until="load", timeout=SETTLE_TIMEOUT_MS)
        if page.evaluate(MATHJAX_DONE) is False:
            report.problems.append("MathJax did not finish typesetting in 30 s")
        try:
            page.wait_for_function(WIDGETS_DONE, timeout=SETTLE_TIMEOUT_MS, polling=200)
        except PlaywrightTimeout:
            pass  # INSPECT names each blank widget
        if not quiet(page, pending):
            waiting = ", ".join(sorted(url.removeprefix(base) for url in pending))
            report.problems.append(f"page still loading after {SETTLE_TIMEOUT_MS // 1000} s: {waiting}")
        page.evaluate(EXPAND)
        page.wait_for_timeout(300)  # the toggles' transitions
        found = page.evaluate(INSPECT)
        report.problems += found["errors"] + found["layout"]
        report.counts = found["counts"]
        # Last: Playwright hides scrollbars for a screenshot, which would change what INSPECT measures.
        page.evaluate(COLLAPSE)
        page.wait_for_timeout(300)
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)  # as a reader first sees it
    except PlaywrightTimeout as error:
        report.problems.append(f"page did not settle: {str(error).splitlines()[0]}")
    finally:
        context.close()
    return report


def quiet(page: Page, pending: set[str], for_s: float = 0.5) -> bool:
    """Wait until no request has been in flight for ``for_s`` seconds (False after SETTLE_TIMEOUT_MS).

    Playwright's own "networkidle" now and then never came, with nothing loading.
    """
    deadline = time.monotonic() + SETTLE_TIMEOUT_MS / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        if pending:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= for_s:
            return True
        page.wait_for_timeout(100)  # lets Playwright deliver the request events
    return False


def blocked_noise(text: str) -> bool:
    """Console lines that only echo a request this check blocked or a failed load it reports itself."""
    return "ERR_BLOCKED_BY_CLIENT" in text or text.startswith("Failed to load resource")


def check_width(viewport: Viewport, base: str, pages: list[str], screenshots: Path) -> list[Report]:
    """Every page at one width, in one browser; prints a line per page as it goes."""
    # Desktop: scrollbars drawn and taking room, as on Windows and Linux (Playwright hides them by
    # default). Phone: none drawn, as a phone shows none until the reader scrolls.
    hide = [] if viewport.mobile else ["--hide-scrollbars"]
    reports = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), args=["--no-sandbox"], ignore_default_args=hide
        )
        for relative in pages:
            shot = screenshots / viewport.name / (relative.replace("/", "_").removesuffix(".html") + ".png")
            began = time.monotonic()
            report = check_page(browser, base, relative, viewport, shot)
            counts = report.counts
            summary = (f"{counts.get('display', 0)} display + {counts.get('inline', 0)} inline formulas"
                       + (f", {counts['widgets']}/{counts['views']} widgets" if counts.get("views") else ""))
            problems = "".join(f"\n     - {problem}" for problem in report.problems)
            print(f"{'FAIL' if report.problems else 'ok  '} {viewport.name:7} {relative}: {summary}"
                  f" ({time.monotonic() - began:.1f} s){problems}", flush=True)
            reports.append(report)
        browser.close()
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path, nargs="?", default=Path("_build/html"))
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"))
    parser.add_argument("--pages", nargs="*", default=["*"], help="only the pages matching these globs")
    args = parser.parse_args()
    if not (args.site / "index.html").exists():
        sys.exit(f"no built site at {args.site}: run `make book` first")
    find_chromium()
    pages = sorted(
        path.relative_to(args.site).as_posix()
        for path in args.site.rglob("*.html")
        if not any(part.startswith(("_", ".")) for part in path.relative_to(args.site).parts[:-1])
    )
    pages = [page for page in pages if any(fnmatch.fnmatch(page, glob) for glob in args.pages)]
    failed = 0
    loaded = []
    for relative in pages:  # a page that only forwards to another (index.html)
        if redirect := REDIRECT.search((args.site / relative).read_text()):
            target = (args.site / relative).parent / redirect.group(1)
            print(f"{'ok  ' if target.is_file() else 'FAIL'} redirect {relative} -> {redirect.group(1)}")
            failed += not target.is_file()
        else:
            loaded.append(relative)
    server = serve(args.site)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    start = time.monotonic()
    # The two widths in two processes, each with its own browser (the server stays in this one).
    # Spawned, not forked: a fork would copy this process with the server's thread running.
    with ProcessPoolExecutor(max_workers=len(VIEWPORTS), mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = [pool.submit(check_width, viewport, base, loaded, args.screenshots) for viewport in VIEWPORTS]
        reports = {viewport.name: run.result() for viewport, run in zip(VIEWPORTS, runs)}
    server.shutdown()
    failed += sum(bool(report.problems) for width in reports.values() for report in width)
    totals = {
        key: sum(report.counts.get(key, 0) for report in reports["desktop"]) for key in ("display", "inline", "widgets")
    }
    print(
        f"{len(loaded)} pages x {len(VIEWPORTS)} widths in {time.monotonic() - start:.0f} s: "
        f"{totals['display']} display and {totals['inline']} inline formulas, {totals['widgets']} widgets; "
        f"{failed} page views failed; screenshots in {args.screenshots}/{{desktop,phone}}"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
