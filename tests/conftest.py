"""Shared fixtures: artifacts are exported once per session and reused (conversions cost 10-20 s)."""

from __future__ import annotations

import os
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*seeded random initialisation.*")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("session")
