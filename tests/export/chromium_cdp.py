"""A small Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (standard library only).

Headless Chromium reads commands on fd 3 and writes replies and events on fd 4, each message a
JSON object ended by a NUL byte. `Browser` starts it with the network cut off (offline emulation,
an unresolvable host map and a dead proxy), opens pages, evaluates script, clicks and takes
screenshots, and records every request a page makes.

Also a script for the docs' screenshots:
    python tests/export/chromium_cdp.py PAGE.html OUT.png [--eval JS] [--click SELECTOR] [--colors N]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 30.0


def find_chromium() -> str | None:
    """``$YOLOSPAN_CHROMIUM`` or the first Chromium on PATH."""
    configured = os.environ.get("YOLOSPAN_CHROMIUM")
    if configured:
        return configured
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


_FLAGS = (
    "--headless",
    "--remote-debugging-pipe",
    "--no-sandbox",  # CI runs as root, where the sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    # No network: no name resolves and every proxied request goes to a closed port.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--hide-scrollbars",
)


class CdpError(RuntimeError):
    pass


class Browser:
    """One headless Chromium; use as a context manager."""

    def __init__(self, executable: str) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="yolospan-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # The child needs the pipe ends as fds 3 and 4. Copies at 10 and up cannot be clobbered by
        # those dup2 calls, and keeping the originals open while forking keeps 3 and 4 taken here,
        # so subprocess's own error pipe cannot be 3 or 4 in the child either.
        child_in = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)

        def wire_fds() -> None:  # in the child, before exec; dup2 makes 3 and 4 inheritable
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self._process = subprocess.Popen(
            [executable, *_FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds,
            close_fds=False,  # everything Python opens is close-on-exec already; 3 and 4 are not
        )
        for fd in (to_child_r, from_child_w, child_in, child_out):
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(CdpError, OSError):
            self.send("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._profile.cleanup()

    # --- protocol ---------------------------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(TIMEOUT_S)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str | None = None) -> dict[str, Any]:
        for index, event in enumerate(self.events):
            if event.get("method") == method and event.get("sessionId") == session:
                return self.events.pop(index)
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            event = self._receive(deadline - time.monotonic())
            if event.get("method") == method and event.get("sessionId") == session:
                return event
            self.events.append(event)

    def _receive(self, timeout: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_child], [], [], max(timeout, 0))
            if not ready:
                raise CdpError("Chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise CdpError("Chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        result: dict[str, Any] = json.loads(message)
        return result

    # --- pages ------------------------------------------------------------------------------------

    def open(self, path: Path, *, width: int = 1280, height: int = 800) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        for method in ("Page.enable", "Runtime.enable", "Network.enable", "Log.enable"):
            self.send(method, session=session)
        self.send(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
            session=session,
        )
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        page.url = path.resolve().as_uri()
        self.send("Page.navigate", {"url": page.url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        return page


class Page:
    def __init__(self, browser: Browser, session: str, target: str) -> None:
        self._browser = browser
        self.session = session
        self.target = target
        self.url = ""

    def evaluate(self, expression: str) -> Any:
        reply = self._browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session
        )
        if "exceptionDetails" in reply:
            raise CdpError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the first element matching ``selector``."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            ' e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect();'
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self._browser.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
                session=self.session,
            )

    def screenshot(self, path: Path) -> None:
        data = self._browser.send("Page.captureScreenshot", {"format": "png"}, session=self.session)["data"]
        path.write_bytes(base64.b64decode(data))

    def requests(self) -> list[str]:
        """URLs of every request this page started (the page's own file included)."""
        return [
            event["params"]["request"]["url"]
            for event in self._browser.events
            if event.get("method") == "Network.requestWillBeSent" and event.get("sessionId") == self.session
        ]

    def problems(self) -> list[str]:
        """Script exceptions and console/log errors (a CSP violation is reported as one)."""
        found = []
        for event in self._browser.events:
            if event.get("sessionId") != self.session:
                continue
            if event.get("method") == "Runtime.exceptionThrown":
                found.append(json.dumps(event["params"]["exceptionDetails"]))
            elif event.get("method") == "Log.entryAdded" and event["params"]["entry"]["level"] == "error":
                found.append(event["params"]["entry"]["text"])
            elif event.get("method") == "Runtime.consoleAPICalled" and event["params"]["type"] == "error":
                found.append(json.dumps(event["params"]["args"]))
        return found

    def close(self) -> None:
        self._browser.send("Target.closeTarget", {"targetId": self.target})


def _main() -> None:
    parser = argparse.ArgumentParser(description="Screenshot an HTML file in headless Chromium, offline.")
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--eval", metavar="JS", help="run this script in the page first")
    parser.add_argument("--click", metavar="SELECTOR", help="then click this element (CSS selector)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--colors", type=int, metavar="N", help="reduce to N colours (a smaller PNG)")
    args = parser.parse_args()
    executable = find_chromium()
    if executable is None:
        raise SystemExit("no Chromium found (apt-get install chromium)")
    with Browser(executable) as browser:
        page = browser.open(args.page, width=args.width, height=args.height)
        if args.eval:
            page.evaluate(args.eval)
        if args.click:
            page.click(args.click)
        page.screenshot(args.out)
        if page.problems() or page.requests() != [page.url]:
            raise SystemExit(f"page problems: {page.problems()}, requests: {page.requests()}")
    if args.colors:
        from PIL import Image

        with Image.open(args.out) as image:
            # Octree without dithering keeps the phase colours and text edges clean.
            palette = image.convert("RGB").quantize(
                colors=args.colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
            )
            palette.save(args.out, optimize=True)


if __name__ == "__main__":
    _main()
