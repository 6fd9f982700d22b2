"""Tried as a new user would: the README's first-sale walkthrough against a real server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_readme_first_sale_walkthrough(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = "\n".join(readme.splitlines()[:40])
    assert "kartochka serve" in head and ".venv/bin/pytest" in head
    block = re.search(r"## First sale in one minute.*?```sh\n(.*?)```", readme, re.S)
    assert block, "the README lost its walkthrough"
    bindir = str(Path(sys.executable).parent) + "/"
    port = _free_port()
    script = block.group(1).replace(".venv/bin/", bindir).replace("8080", str(port))
    env = {**os.environ, "KARTOCHKA_PORT": str(port), "KARTOCHKA_LOG_LEVEL": "WARNING"}
    env.pop("KARTOCHKA_DATABASE_URL", None)
    env.pop("KARTOCHKA_SECRET_KEY", None)
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([bindir + "kartochka", "serve"], cwd=tmp_path, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not come up"
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert '"accrued":"62.00"' in done.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
    assert (tmp_path / "kartochka.db").exists()
