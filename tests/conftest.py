"""Shared fixtures: artifacts are exported once per session and reused (conversions cost 10-20 s)."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message=".*seeded random initialisation.*")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# --form auto's timing budget: which candidate is faster is not what the tests check (tests/test_timing_rule.py
# checks the rule), and two workers on two cores leave every comparison undecided until the budget is spent.
os.environ.setdefault("SHUFFLENET_EDGE_TUNE_SECONDS", "3")

# Tests never read or write the user's home or caches: the project cache, XDG caches, matplotlib's config and
# HOME itself point into one temporary folder for the session (removed at the end), so a run on a fresh
# machine and a run on a machine with an earlier cache see the same thing. pip's download cache is kept
# (benchmarks/arm_qemu.py downloads aarch64 wheels with pip): PIP_CACHE_DIR keeps its old default.
# Under pytest-xdist the controller makes the folder and its workers (child processes, started after this file is
# imported) inherit it through the environment, so they share one cache: a digits checkpoint or the arm64 sysroot
# is built once (paths.cache_lock) and reused by every worker.
if "PYTEST_XDIST_WORKER" in os.environ and os.environ.get("SHUFFLENET_EDGE_TEST_HOME"):
    _SESSION_HOME = Path(os.environ["SHUFFLENET_EDGE_TEST_HOME"])
else:
    _SESSION_HOME = Path(tempfile.mkdtemp(prefix="shufflenet-edge-tests-"))
    os.environ["SHUFFLENET_EDGE_TEST_HOME"] = str(_SESSION_HOME)
    os.environ["SHUFFLENET_EDGE_TEST_HOME_OWNER"] = str(os.getpid())
_user_xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
os.environ.setdefault("PIP_CACHE_DIR", os.path.join(_user_xdg, "pip"))
for _var, _sub in (("SHUFFLENET_EDGE_CACHE", "cache/shufflenet-edge"), ("XDG_CACHE_HOME", "cache"),
                   ("MPLCONFIGDIR", "mpl"), ("HOME", "home")):
    (_SESSION_HOME / _sub).mkdir(parents=True, exist_ok=True)
    os.environ[_var] = str(_SESSION_HOME / _sub)


def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get("SHUFFLENET_EDGE_TEST_HOME_OWNER") == str(os.getpid()):  # whoever made the folder removes it
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # pytest-xdist (--dist loadfile) hands out test files in collection order: the longest file (the zoo, about a
    # quarter of the suite) goes first, so the other worker takes the rest meanwhile instead of one worker finishing
    # it alone at the end.
    items.sort(key=lambda it: it.path.name != "test_zoo.py")
