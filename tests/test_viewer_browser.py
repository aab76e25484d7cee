"""The HTML page in a real browser, with the network off: headless Chromium (Debian's
`chromium`; .ci/run installs it) driven over the DevTools protocol on a pipe
(--remote-debugging-pipe), stdlib only.

For one env id per kind of scene (tests/test_render_families.py's poses), the page written by
render.html_page must, with every request outside the file refused (--proxy-server to a
closed port, and no request seen leaving the page at all): start brax's viewer, draw
(the screenshot's canvas is not one flat colour), log no console error or exception,
and frame the scene: every body projects inside the view and their spread covers a fair
part of it. Controls: brax's own default camera leaves the reacher a small patch (the
framing check fails there), and a page written without the cached libraries draws
nothing offline, logs errors and keeps its note.

three.js and lil-gui come from render.viewer_cache(); when it lacks them the session
fetches them once (scripts/fetch_viewer_libs.sh, npm). No browser is a failure, not a
skip: install chromium.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import render
from tests import test_render_families as families

pytestmark = [
    pytest.mark.filterwarnings("ignore:Brax System, piplines:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:brax"),
    pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning"),
]

WIDTH, HEIGHT = 800, 480  # the viewport: the viewer is 480 px high (html_page's default)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--mute-audio",
    # Every request that leaves the page goes to a closed local port: offline.
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    f"--window-size={WIDTH},{HEIGHT + 200}",
    "--remote-debugging-pipe",
)
BACKGROUND = (160, 160, 160)  # brax viewer's scene background, 0xa0a0a0


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("no headless browser: install Debian's chromium (apt-get install chromium; .ci/run does)")


class Browser:
    """One Chromium process; DevTools protocol messages are JSON, NUL-terminated, on
    file descriptors 3 (to the browser) and 4 (from it)."""

    def __init__(self, profile: Path, log_path: Path):
        to_browser, self._writer = os.pipe()
        self._reader, from_browser = os.pipe()
        # High numbers, so that bash's 3<& and 4>& cannot overwrite them.
        to_hi, from_hi = (fcntl.fcntl(fd, fcntl.F_DUPFD, 20) for fd in (to_browser, from_browser))
        os.close(to_browser)
        os.close(from_browser)
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_hi} 4>&{from_hi}', "bash", chromium_path(), *FLAGS,
             f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(to_hi, from_hi),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        os.close(to_hi)
        os.close(from_hi)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._inbox: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buffer = b""
        with open(self._reader, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for message in messages:
                    self._inbox.put(json.loads(message))
        self._inbox.put(None)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while self._next_id not in self._replies:
            try:
                reply = self._inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                message = f"{method}: no reply in {timeout} s; browser log: {self.log_tail()}"
                raise TimeoutError(message) from None
            if reply is None:
                raise RuntimeError(f"the browser exited; its log: {self.log_tail()}")
            if "id" in reply:
                self._replies[reply["id"]] = reply
            else:
                self.events.append(reply)
        reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def log_tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._writer)
        self._log.close()


class Page(dict):
    """What opening one file showed: screenshot, console, network, framing."""


def open_page(browser: Browser, path: Path, wait_for_drawn: bool = True, timeout: float = 60) -> Page:
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Network", "Page"):
        browser.send(f"{domain}.enable", session=session)
    viewport = {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}
    browser.send("Emulation.setDeviceMetricsOverride", viewport, session)
    start = len(browser.events)
    browser.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)

    def evaluate(expression):
        result = browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        return result["result"].get("value")

    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        try:
            state = evaluate(READY_JS)
        except RuntimeError:  # between documents: no execution context yet
            state = None
        if state == "drawn" or (state == "loaded" and not wait_for_drawn):
            break
        time.sleep(0.2)
    if not wait_for_drawn:
        time.sleep(2.0)  # give the module imports their chance to fail
    page = Page(state=state)
    page["framing"] = evaluate(FRAMING_JS) if state == "drawn" else None
    page["default_framing"] = evaluate(DEFAULT_CAMERA_JS) if state == "drawn" else None
    page["note"] = evaluate("document.getElementById('needs-network')?.textContent ?? null")
    page["canvases"] = evaluate("document.querySelectorAll('#brax-viewer canvas').length")
    shot = browser.send(
        "Page.captureScreenshot",
        {"format": "png", "clip": {"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT, "scale": 1}},
        session,
    )
    page["png"] = base64.b64decode(shot["data"])
    events = [e for e in browser.events[start:] if e.get("sessionId") == session]
    page["errors"] = console_errors(events)
    page["requests"] = [
        e["params"]["request"]["url"]
        for e in events
        if e["method"] == "Network.requestWillBeSent"
        and not e["params"]["request"]["url"].startswith(("file:", "data:", "about:"))
    ]
    browser.send("Target.closeTarget", {"targetId": target})
    return page


def console_errors(events: list[dict]) -> list[str]:
    errors = []
    for e in events:
        method, params = e["method"], e.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"{params['entry']['source']}: {params['entry']['text']}")
    return errors


READY_JS = "document.readyState === 'complete' && (document.body.dataset.viewer || 'loaded')"
# Every body's position, in every frame of the trajectory, projected by the viewer's camera
# (normalized device coordinates: the view is [-1, 1]^2).
FRAMING_JS = """
(() => {
  const v = window.braxViewer, points = [];
  const frames = v.system.states.x;
  for (const frame of frames) {
    for (const pos of frame.pos) {
      const p = v.camera.position.clone().set(pos[0], pos[1], pos[2]).project(v.camera);
      points.push([p.x, p.y, p.z]);
    }
  }
  return points;
})()
"""
# The same, from brax's own default camera (position (5, 8, 2), looking at the first body).
DEFAULT_CAMERA_JS = """
(() => {
  const v = window.braxViewer, c = v.camera.clone(), first = v.system.states.x[0].pos[0];
  c.position.set(5, 8, 2);
  c.lookAt(first[0], first[1], first[2]);
  c.updateMatrixWorld();
  return v.system.states.x.flatMap(f => f.pos.map(p => {
    const q = c.position.clone().set(p[0], p[1], p[2]).project(c);
    return [q.x, q.y, q.z];
  }));
})()
"""


def framing_problem(points) -> str | None:
    """None when every body is in view and their spread covers a fair part of it."""
    ndc = np.asarray(points, np.float64)
    if np.abs(ndc[:, :2]).max() > 0.95 or np.abs(ndc[:, 2]).max() > 1:
        return f"a body is outside the view: NDC range {ndc.min(0).round(2)} .. {ndc.max(0).round(2)}"
    spread = (ndc[:, :2].max(0) - ndc[:, :2].min(0)).max()
    if spread < 0.4:
        return f"the bodies span only {spread:.2f} of the view's 2.0 (a small patch)"
    return None


def drawn_problem(png: bytes, top: int = 0) -> str | None:
    """None when the screenshot (below row `top`) shows a drawn scene: varied pixels, not
    mostly the viewer's background."""
    with Image.open(io.BytesIO(png)) as image:
        pixels = np.asarray(image.convert("RGB"), np.float64)[top:]
    if pixels.std() < 10:
        return f"flat screenshot (pixel std {pixels.std():.1f})"
    background = np.abs(pixels - BACKGROUND).max(axis=2) <= 3
    if background.mean() > 0.9:
        return f"{background.mean():.0%} of the screenshot is the viewer's background"
    return None


@pytest.fixture(scope="module")
def viewer_libs(tmp_path_factory):
    """render.viewer_cache() holding three.js and lil-gui; fetched once (npm) if it lacks them."""
    cache = render.viewer_cache()
    if render._library_imports(cache)[1]:
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / ".fetch.lock", "w") as lock:  # the other xdist worker may fetch too
            fcntl.flock(lock, fcntl.LOCK_EX)
            if render._library_imports(cache)[1]:
                command = ["bash", str(render.FETCH_SCRIPT), str(cache)]
                result = subprocess.run(command, capture_output=True, text=True, timeout=300)
                assert result.returncode == 0, f"{render.fetch_command()} failed: {result.stderr[-2000:]}"
    assert not render._library_imports(cache)[1], render._library_imports(cache)[1]
    return cache


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    root = tmp_path_factory.mktemp("chromium")
    b = Browser(root / "profile", root / "chromium.log")
    b.send("Browser.getVersion", timeout=60)
    yield b
    b.close()


def write_page(env_id: str, path: Path) -> Path:
    env, frames = families.family_frames(env_id)
    path.write_text(render.html_page(env.sys, frames))
    return path


# A page takes seconds in software WebGL: one per kind of scene (an arena, a maze, an arm,
# a planar runner); tests/test_render_families.py writes the page of every family.
BROWSER_IDS = ("reacher", "ant_u_maze", "arm_push_easy", "cheetah")


@pytest.mark.parametrize("env_id", BROWSER_IDS)
def test_page_draws_offline_and_frames_the_scene(env_id, viewer_libs, browser, tmp_path):
    page = open_page(browser, write_page(env_id, tmp_path / f"{env_id}.html"))
    (tmp_path / f"{env_id}.png").write_bytes(page["png"])  # to look at: pytest's tmp dir
    assert page["state"] == "drawn", (page["state"], page["errors"], browser.log_tail())
    assert page["errors"] == [] and page["requests"] == []
    assert page["note"] is None and page["canvases"] == 1
    assert drawn_problem(page["png"]) is None, drawn_problem(page["png"])
    assert framing_problem(page["framing"]) is None, framing_problem(page["framing"])


def test_control_brax_default_camera_leaves_the_reacher_a_small_patch(viewer_libs, browser, tmp_path):
    page = open_page(browser, write_page("reacher", tmp_path / "reacher.html"))
    assert page["state"] == "drawn" and framing_problem(page["framing"]) is None
    assert "small patch" in framing_problem(page["default_framing"])


def test_control_without_the_libraries_the_page_says_so_and_draws_nothing_offline(
    browser, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv(render.VIEWER_CACHE_ENV, str(tmp_path / "empty-cache"))
    monkeypatch.setattr(render, "_warned_no_viewer_libs", False)
    caplog.set_level("WARNING", logger="crl")
    path = write_page("reacher", tmp_path / "reacher.html")
    write_page("reacher", tmp_path / "again.html")
    messages = [r.getMessage() for r in caplog.records]
    warnings = [m for m in messages if "HTML pages will need the internet" in m]
    assert len(warnings) == 1 and render.fetch_command() in warnings[0]

    page = open_page(browser, path, wait_for_drawn=False, timeout=20)
    assert page["state"] == "loaded" and page["canvases"] == 0
    assert page["note"] and render.fetch_command() in page["note"]
    assert page["errors"], "the CDN imports should have failed offline"
    assert page["requests"]  # it did try the internet
    assert "flat screenshot" in drawn_problem(page["png"], top=HEIGHT // 2)  # below the note
