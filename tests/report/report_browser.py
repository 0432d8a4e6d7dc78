"""Open a page in Debian's headless Chromium: the DOM after the scripts ran, a screenshot, the
console messages, and the requests the page made (from Chromium's net log)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from required import unavailable

# Chromium's own background traffic (updates, accounts) is switched off where it can be; what is left
# is told apart from the page's requests by the browser's User-Agent, which only page requests carry.
FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-features=Translate,OptimizationHints,MediaRouter,SpellCheck",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no host name resolves: offline
    "--virtual-time-budget=15000",  # let the charts' promises and timers run before the dump
    "--enable-logging=stderr",
    "--v=0",
]
CONSOLE = re.compile(r':(INFO|WARNING|ERROR):CONSOLE[^\]]*\] "(?P<message>.*)", source: (?P<source>.*)$')


def chromium() -> str:
    """The Chromium binary; fails under CI (``.ci/run`` installs it), else skips, when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    return found


@dataclass
class Page:
    dom: str
    console: list[str]
    """console messages of the page (log, warn and error alike)"""
    requests: list[str]
    """http(s) URLs the page asked for"""


def _run(page: Path, work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = work / "chromium-profile"
    command = [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def open_page(page: Path, work: Path) -> Page:
    """Load ``page`` offline; its DOM once the scripts have run, its console, its requests."""
    work.mkdir(parents=True, exist_ok=True)
    net_log = work / "net-log.json"
    done = _run(page, work, "--dump-dom", f"--log-net-log={net_log}")
    assert done.returncode == 0, done.stderr[-2000:]
    console = [m.group("message") for line in done.stderr.splitlines() if (m := CONSOLE.search(line))]
    return Page(done.stdout, console, page_requests(net_log))


def console_errors(console: list[str]) -> list[str]:
    """The console messages that tell of an error: an exception or a rejected promise not caught
    (``Uncaught ...``), anything the Content-Security-Policy blocked (Chromium 156 words it "Loading
    the image '...' violates the following Content Security Policy directive", older ones "Refused to
    load ... because it violates ..."), a message logged as ``ERROR ...``. Chromium's log gives every
    console message the same level, so ``console.error`` is told apart only by such a text; the
    report's own page counts its errors in ``<body data-errors>``."""
    return [m for m in console if "Uncaught" in m or "Content Security Policy" in m or m.startswith("ERROR")]


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 2400, dark: bool = False) -> Path:
    """A PNG of ``page`` (dark: as with a dark colour scheme preferred)."""
    extra = [f"--screenshot={out}", f"--window-size={width},{height}", "--hide-scrollbars"]
    if dark:
        extra.append("--force-dark-mode")
    done = _run(page, out.parent / f"profile-{out.stem}", *extra)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.is_file()
    assert out.stat().st_size > 10_000
    return out


def page_requests(net_log: Path) -> list[str]:
    """The http(s) URLs requested by pages in a Chromium net log."""
    text = net_log.read_text("utf-8", errors="replace").rstrip().rstrip(",")
    if not text.endswith("}"):  # a log cut short by the exit
        text = text.rstrip("]").rstrip().rstrip(",") + "]}"
    log = json.loads(text)
    types = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    found = []
    for event in log["events"]:
        params = event.get("params") or {}
        if types.get(event["type"]) != "CORS_REQUEST" or "url" not in params:
            continue
        if "Mozilla/" in str(params.get("request_headers", "")) and params["url"].startswith("http"):
            found.append(params["url"])
    return found


class Charts(HTMLParser):
    """Per chart container (``div.chart``): whether it holds an ``svg`` or ``canvas``, and how many
    marks (elements inside Vega's ``g.role-mark`` groups) it has."""

    VOID = {"img", "br", "hr", "meta", "link", "input", "col", "area", "base", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, int]] = {}
        self._stack: list[tuple[str, str | None, bool]] = []  # tag, chart id, inside marks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        chart, in_marks = (self._stack[-1][1], self._stack[-1][2]) if self._stack else (None, False)
        classes = (a.get("class") or "").split()
        if tag == "div" and "chart" in classes and a.get("id"):
            chart = a["id"]
            self.charts[chart] = {"svg": 0, "canvas": 0, "marks": 0}
        if chart is not None:
            if tag in ("svg", "canvas"):
                self.charts[chart][tag] += 1
            if in_marks and tag in ("path", "rect", "line", "circle", "text", "g"):
                self.charts[chart]["marks"] += 1
        if tag == "g" and "role-mark" in classes:
            in_marks = True
        if tag not in self.VOID:
            self._stack.append((tag, chart, in_marks))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID and self._stack and self._stack[-1][0] == tag:
            self._stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for position in range(len(self._stack) - 1, -1, -1):
            if self._stack[position][0] == tag:
                del self._stack[position:]
                return


def charts_in(dom: str) -> dict[str, dict[str, int]]:
    parser = Charts()
    parser.feed(dom)
    return parser.charts


class Cells(HTMLParser):
    """Tables by id (their rows as cell texts) and elements by id with their ``data-value``."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.values: dict[str, str] = {}
        self.texts: dict[str, str] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._text_id: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id") and a.get("data-value") is not None:
            self.values[a["id"] or ""] = a["data-value"] or ""
        if tag == "dd" and a.get("id"):
            self._text_id, self._text = a["id"], []
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "tr" and self._table and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "dd" and self._text_id:
            self.texts[self._text_id] = "".join(self._text).strip()
            self._text_id = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._text_id is not None:
            self._text.append(data)


def cells_in(dom: str) -> Cells:
    parser = Cells()
    parser.feed(dom)
    return parser


def number(text: str) -> int:
    return int(text.replace(",", ""))
