"""Fixtures for the framework's tests: the demo site as a real process (``browser`` is in
tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def seed_env(tmp_path) -> dict[str, str]:
    """The environment the demo site runs in: its own accounts file and signing secret."""
    return dict(
        os.environ,
        SEED_SITE_DB=str(tmp_path / "accounts.sqlite3"),
        SEED_SITE_SECRET="test-secret-" + "x" * 32,
    )


@pytest.fixture
def seed_site(netassist, seed_env):
    """Start the demo site with ``netassist run`` on a free port; its base URL."""

    def start(*flags: str) -> str:
        proc = netassist(
            "run",
            "--chdir",
            str(EXAMPLES),
            "seed_site:app",
            "--bind",
            "127.0.0.1:0",
            *flags,
            env=seed_env,
        )
        port = proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+)", timeout=30).group(1)
        return f"http://127.0.0.1:{port}"

    return start
