"""The Deep Zoom viewer page in a real browser: Debian's Chromium, headless, from file://.

"No network request leaves the machine" is checked with a recording proxy: Chromium is
told to send every request that is not a file (loopback included: ``<-loopback>``) through
a proxy of ours on 127.0.0.1, which logs each one and refuses it, and host names resolve
to nothing (``--host-resolver-rules``), so a request that tried to go around the proxy
would fail rather than leave. The page must draw the slide with the proxy's log empty.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import minerva_dask as md

pytestmark = pytest.mark.slow

REGION = "&region=0,0,4096,3072"


def chromium() -> str:
    """Debian's ``chromium``; skipped where it is missing, except in CI (``CI=true``)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's package")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return found


class RecordingProxy:
    """A proxy on 127.0.0.1 that records the first line of every request and refuses it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b""
                self.requests.append(data.split(b"\r\n", 1)[0].decode(errors="replace"))
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def viewer(demo_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("viewer") / "slide"
    md.crop_groups(
        {
            "DNA": f"/0/0/0/?c=1|600:24000$0000FF{REGION}",
            "Keratin and CD8": f"/0/0/0/?c=3|500:20000$FF0000,4|500:20000$FFFF00{REGION}",
        },
        out,
        image=demo_path,
        max_size=1024,
    )
    return out


def run_chromium(
    page: str, tmp_path: Path, *extra: str
) -> tuple[subprocess.CompletedProcess, list]:
    proxy = RecordingProxy()
    try:
        done = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}",
                f"--proxy-server=http://127.0.0.1:{proxy.port}",
                "--proxy-bypass-list=<-loopback>",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--window-size=1000,700",
                "--virtual-time-budget=15000",
                *extra,
                page,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        proxy.close()
    return done, proxy.requests


def test_the_viewer_page_shows_the_slide_offline_with_its_group_switcher(viewer, tmp_path):
    from PIL import Image

    page = (viewer / "index.html").as_uri()
    shot = tmp_path / "shot.png"
    done, requests = run_chromium(page, tmp_path, f"--screenshot={shot}")
    assert shot.exists(), done.stderr[-2000:]
    assert requests == [], f"requests left the page: {requests}"
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    header, slide = pixels[:40], pixels[60:]
    assert slide.std() > 10  # not blank
    red, green, blue = slide[..., 0], slide[..., 1], slide[..., 2]
    nuclei = (blue > 50) & (blue > red + 30) & (blue > green + 30)
    assert nuclei.mean() > 0.05  # the DNA group's blue nuclei, drawn from the tiles
    selected = np.all(np.abs(header - (0x2A, 0x6A, 0xD8)) < 8, axis=-1)  # the chosen group
    assert selected.sum() > 200
    # the second group, chosen by the page's address: its own colours, no network either
    second = tmp_path / "second.png"
    done, requests = run_chromium(page + "#Keratin-and-CD8", tmp_path, f"--screenshot={second}")
    assert second.exists() and requests == [], (requests, done.stderr[-2000:])
    slide = np.asarray(Image.open(second).convert("RGB")).astype(np.int16)[60:]
    red, green, blue = slide[..., 0], slide[..., 1], slide[..., 2]
    assert ((red > 50) & (red > blue + 30)).mean() > 0.05  # keratin red, CD8 yellow
    assert ((blue > 50) & (blue > red + 30)).mean() < 0.001  # no blue: not the DNA group


def test_the_viewer_page_lists_every_group_as_a_button(viewer, tmp_path) -> None:
    done, requests = run_chromium((viewer / "index.html").as_uri(), tmp_path, "--dump-dom")
    assert requests == []
    dom = done.stdout
    assert 'aria-selected="true">DNA</button>' in dom
    assert 'aria-selected="false">Keratin and CD8</button>' in dom
    assert "openseadragon-container" in dom  # OpenSeadragon started


def test_groups_naming_different_images_are_refused_not_shown_as_the_first(
    demo_path, tmp_path, capsys
) -> None:
    """One image is opened for all groups: a group asking for another image (another id
    or server) would have shown the first image under its name."""
    from minerva_dask.cli import main

    one, two = f"/1/0/0/?c=1|600:24000$0000FF{REGION}", f"/2/0/0/?c=2|0:9000$00FF00{REGION}"
    with pytest.raises(md.RequestError, match=r"several \( image 1, 2\)"):
        md.crop_groups({"A": one, "B": two}, tmp_path / "v", image=demo_path)
    argv = ["crop", "--image", str(demo_path), "--group", f"A={one}", "--group", f"B={two}"]
    assert main([*argv, "-o", str(tmp_path / "v")]) == 2
    assert "channel groups show one image" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()
    a, b = (f"https://{host}/figure/render_scaled_region{one}" for host in ("a.org", "b.org"))
    with pytest.raises(md.RequestError, match=r"several \(https://a.org, https://b.org image 1\)"):
        md.crop_groups({"A": a, "B": b}, tmp_path / "v", image=demo_path)
