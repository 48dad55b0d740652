"""A headless Chromium driven over the DevTools protocol on a pipe (no websocket client needed): open a
page, evaluate JavaScript in it, take a screenshot.

Chromium started with ``--remote-debugging-pipe`` reads commands on its fd 3 and writes replies and
events on its fd 4, each message a JSON object followed by a NUL byte.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One page in a fresh headless Chromium (its profile in ``profile``); use as a context manager."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900, timeout: float = 30) -> None:
        commands_read, self.commands = os.pipe()
        self.replies, replies_write = os.pipe()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (commands_read, replies_write)]
        for fd in (commands_read, replies_write):
            os.close(fd)

        def child_fds() -> None:  # Chromium's pipe is fixed at fds 3 (commands) and 4 (replies)
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        args = ["--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        args += [f"--user-data-dir={profile}", f"--window-size={width},{height}", "--no-first-run", "about:blank"]
        self.process = subprocess.Popen(
            [CHROMIUM, *args],
            pass_fds=(3, 4),
            preexec_fn=child_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in high:
            os.close(fd)
        self.timeout, self.next_id, self.buffer, self.events = timeout, 0, b"", []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", on_page=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            on_page=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        os.close(self.commands)
        try:
            self.process.wait(timeout=10)  # Chromium quits when its command pipe closes
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.replies)

    def call(self, method: str, on_page: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command (to the page's session with ``on_page``) and return its result; raises
        ``RuntimeError`` on a protocol error and ``TimeoutError`` when no reply comes."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if on_page:
            message["sessionId"] = self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def _message(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self.buffer:
            if not select.select([self.replies], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError(f"Chromium sent nothing for {self.timeout} s")
            chunk = os.read(self.replies, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium closed its pipe (exit status {self.process.poll()})")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> None:
        """Load ``url`` and wait for its load event (every image loaded or failed)."""
        self.events.clear()
        self.call("Page.navigate", on_page=True, url=url)
        while not any(event.get("method") == "Page.loadEventFired" for event in self.events):
            self.events.append(self._message())

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression on the page (a promise is awaited); ``RuntimeError``
        when it throws."""
        result = self.call(
            "Runtime.evaluate", on_page=True, expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport at ``path``."""
        data = self.call("Page.captureScreenshot", on_page=True, format="png")
        path.write_bytes(base64.b64decode(data["data"]))
        return path
