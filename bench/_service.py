"""`lightctl serve` as a separate process, for whole-process figures (RSS, API latency)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _common import HOST

VIEWER_TOKEN = "bench-viewer-token-0123456789"


def token_config() -> str:
    """config.yaml lines giving the bench a viewer token (stored hashed, as in production)."""
    from lightctl.api.auth import hash_token

    return f"tokens:\n  - {{name: bench, role: viewer, hash: '{hash_token(VIEWER_TOKEN)}'}}\n"


class Serve:
    def __init__(self, config: Path, api_port: int, log_path: Path) -> None:
        exe = Path(sys.executable).with_name("lightctl")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from lightctl.cli import main; main()"]
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [*cmd, "serve", "-c", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=config.parent,
        )
        self.url = f"http://{HOST}:{api_port}"
        self.http = httpx.Client(base_url=self.url, timeout=30.0, trust_env=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"lightctl serve exited: {self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                if self.http.get("/api/v1/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"lightctl serve not ready within {within_s:.0f} s")

    def health(self) -> dict:
        r = self.http.get("/api/v1/health", timeout=30.0)
        r.raise_for_status()
        data: dict = r.json()
        return data

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
