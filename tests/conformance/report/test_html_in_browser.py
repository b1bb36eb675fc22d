"""report.html in a real browser (headless Chromium): the first screen and server text.

How "visible without scrolling" is measured: the page is copied with one probe script added at the end
of its body (the report itself has none), which writes `getBoundingClientRect()` of the verdict badge
and of the first failure's card, the viewport's size and what `elementFromPoint` finds at the badge
into a data attribute of <html>; `chromium --dump-dom` returns the DOM with it. Positions from the
layout engine do not depend on fonts rendering to the pixel, so the test is robust where comparing a
screenshot with a reference image is not. The window is 1280x800, a small laptop screen; Chromium's
headless window keeps room for a browser's own bars, as a real one does, so the page gets about 650
CSS pixels of height there, and the badge and the whole card must fit in those.

The screenshot, at the same window, checks what a person sees: at the badge's measured place its
pixels are the FAILED colour, and the page's background just beside it is not.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from conformance.report import write_reports
from conformance.runner import run
from conformance.settings import RunSettings

WINDOW = (1280, 800)
FAILED_RGB = (0xB4, 0x23, 0x18)  # --fail in templates/report.css.j2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PROBE = """<script>
const box = (element) => {
  const r = element.getBoundingClientRect();
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom};
};
const badge = document.querySelector(".verdict");
const card = document.querySelector("#findings article.finding");
const b = badge.getBoundingClientRect();
const excerpt = document.querySelector("#findings pre.excerpt");
document.documentElement.dataset.probe = JSON.stringify({
  viewport: {width: innerWidth, height: innerHeight},
  badge: {...box(badge), text: badge.textContent,
          hit: document.elementFromPoint((b.left + b.right) / 2, (b.top + b.bottom) / 2) === badge},
  card: card && {...box(card), id: card.id},
  excerpt: excerpt && excerpt.innerText,
  images: document.images.length,
  scripts: document.scripts.length,
});
</script>"""


class _Root(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.attrs = dict(attrs)


def measure(chromium: Any, page: Path, tmp_path: Path) -> dict[str, Any]:
    """Load a copy of `page` with the probe in a WINDOW-sized headless Chromium; what the probe saw."""
    before, end, after = page.read_text(encoding="utf-8").rpartition("</body>")
    assert end, "the page has no </body>"
    probed = tmp_path / "probed.html"
    probed.write_text(before + PROBE + end + after, encoding="utf-8")
    root = _Root()
    root.feed(chromium.dump_dom(probed.as_uri(), window=WINDOW))
    found = root.attrs.get("data-probe")
    assert found, "the probe did not run"
    # Set after the probe ran (an <img> fails to load later), it is read from the DOM as it ended.
    return {**json.loads(found), "pwned": root.attrs.get("data-pwned")}


def on_screen(box: dict[str, float], viewport: dict[str, float]) -> bool:
    across = box["left"] >= 0 and box["right"] <= viewport["width"]
    down = box["top"] >= 0 and box["bottom"] <= viewport["height"]
    return across and down


def png_rows(data: bytes, rows: int) -> tuple[int, list[bytes]]:
    """The first `rows` rows of an 8-bit RGB(A) PNG (what Chromium writes) as raw pixels: (bpp, rows)."""
    assert data.startswith(PNG_SIGNATURE)
    position, compressed = len(PNG_SIGNATURE), b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunk = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, _, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0, "not a plain RGB(A) PNG"
        elif kind == b"IDAT":
            compressed += chunk
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(compressed), width * bpp
    previous, decoded = bytearray(stride), []
    for y in range(rows):  # undo each row's filter (PNG spec, section 9)
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                near = min(
                    (abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner)
                )
                line[i] = (line[i] + near[2]) & 0xFF
        decoded.append(bytes(line))
        previous = line
    return bpp, decoded


def pixel(bpp: int, rows: list[bytes], x: int, y: int) -> tuple[int, int, int]:
    red, green, blue = rows[y][x * bpp : x * bpp + 3]
    return red, green, blue


def close_to(seen: tuple[int, int, int], wanted: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 8 for a, b in zip(seen, wanted, strict=True))


def test_a_failing_run_shows_the_verdict_and_its_first_failure_without_scrolling(
    mock_starter: Any, chromium: Any, tmp_path: Path
) -> None:
    # A real run: the scripted checks against the bundled mock, /tasks/batch shadowed by /tasks/{id}.
    mock = mock_starter("--fault", "TASK-BATCH-ROUTE")
    settings = RunSettings(base_url=mock.url, api_key=mock.key, report_dir=tmp_path / "reports", timeout=5.0)
    outcome = run(settings, out=[].append, engine=False)
    assert outcome.report.verdict == "failed"
    page = outcome.report_paths["html"]
    assert mock.key not in page.read_text(encoding="utf-8")  # the mock's key is a canary

    seen = measure(chromium, page, tmp_path)
    viewport, badge, card = seen["viewport"], seen["badge"], seen["card"]
    assert viewport["width"] == WINDOW[0] and 0 < viewport["height"] <= WINDOW[1]
    assert badge["text"] == "FAILED" and badge["hit"], "the badge is covered or missing"
    assert badge["bottom"] - badge["top"] >= 40, "the verdict is no bigger than the text around it"
    assert card["id"] == "finding-TASK-BATCH-ROUTE"
    assert on_screen(badge, viewport), (badge, viewport)
    assert on_screen(card, viewport), (card, viewport)  # all of it: the finding, the answer, the curl

    shot = chromium.screenshot(page.as_uri(), tmp_path / "report.png", window=WINDOW)
    middle = int((badge["top"] + badge["bottom"]) / 2)
    bpp, rows = png_rows(shot.read_bytes(), rows=middle + 1)
    assert close_to(pixel(bpp, rows, int(badge["left"]) + 5, middle), FAILED_RGB)
    assert not close_to(pixel(bpp, rows, int(badge["left"]) - 5, middle), FAILED_RGB)
    # For docs/img/: ENGINY_SCREENSHOT_DIR=docs/img pytest -k first_failure_without_scrolling
    if os.environ.get("ENGINY_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["ENGINY_SCREENSHOT_DIR"]) / "report.png")


def test_markup_in_an_answer_is_shown_as_text_and_never_runs(
    make_report: Any, make_exchange: Any, chromium: Any, tmp_path: Path
) -> None:
    body = (
        '<script>document.documentElement.dataset.pwned = "script"</script>'
        "<img src=x onerror=\"document.documentElement.dataset.pwned = 'img'\"><b>bold</b>"
    )
    report = make_report()
    failed = report.results[1]
    # Only the answer bites here: the fixture's own alert() would hang the browser if it ever ran.
    item = replace(
        failed.evidence[0],
        message="Server error.",
        actual="HTTP 500",
        exchanges=(make_exchange(response_body=body),),
    )
    report = make_report(results=(replace(failed, evidence=(item,)),))
    page = write_reports(report, tmp_path / "reports")["html"]

    seen = measure(chromium, page, tmp_path)
    assert seen["pwned"] is None
    assert seen["scripts"] == 1 and seen["images"] == 0  # the probe's own script; no <img> was made
    assert seen["excerpt"] == body  # on the first screen, character for character
