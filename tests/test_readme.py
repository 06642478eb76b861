"""The README is the front door: small, every measured number traceable, every example working.

- README.md is at most 12 KB;
- every number with a unit (ms, dB, %, an x-ratio such as 0.91x) it quotes appears, with its unit, in a file under
  benchmarks/results/ or docs/ (where each table says when and how it was measured);
- its ```python blocks run as pasted (in a temporary folder: the API snippet exports a small model, about a minute);
- every `shufflenet-edge ...` command in the shell blocks of the README, CONTRIBUTING.md and docs/ names a real
  command, and each `--flag` it uses appears in that command's `--help`;
- the Python blocks in docs/ compile, and the README's relative links point at files that exist.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_BYTES = 12_000  # "at most 12 KB", whichever KB is meant

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```", re.S | re.M)
# A number directly followed by its unit: "4.21 ms", "40.3 dB", "78.1%", "0.91x" (not "64x64", not "x1").
QUANTITY = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s?(ms|dB)|(%)|(x))(?![\w])")


def _blocks(path: Path, langs: tuple[str, ...]) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(path.read_text()) if m.group(1).lower() in langs]


def _shell_files() -> list[Path]:
    return [README, ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]


def test_readme_is_at_most_12_kb() -> None:
    size = README.stat().st_size
    assert size <= MAX_BYTES, f"README.md is {size} bytes; the front door stays under {MAX_BYTES}: move detail to docs/"


def _quantities(text: str) -> set[str]:
    out = set()
    for m in QUANTITY.finditer(text):
        unit = m.group(2) or m.group(3) or m.group(4)
        out.add(f"{m.group(1)} {unit}" if m.group(2) else f"{m.group(1)}{unit}")
    return out


def test_every_quoted_quantity_is_recorded() -> None:
    sources = [p for p in (ROOT / "benchmarks" / "results").iterdir() if p.suffix in (".md", ".json")]
    sources += sorted(DOCS.glob("*.md"))
    corpus = "\n".join(p.read_text(errors="replace") for p in sources)
    corpus_quantities = _quantities(corpus)
    quoted = _quantities(README.read_text())
    assert quoted, "found no quantities in README.md: the pattern is broken"
    missing = sorted(q for q in quoted if q not in corpus_quantities)
    assert not missing, (f"README.md quotes {missing}, found in no file under benchmarks/results/ or docs/: "
                         "record where it was measured (docs/benchmarks.md) or drop it")


def test_readme_python_blocks_run_as_pasted(tmp_path, monkeypatch) -> None:
    blocks = _blocks(README, ("python", "py"))
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    for i, code in enumerate(blocks):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=tmp_path)
        assert r.returncode == 0, f"README python block {i + 1} failed:\n{code}\n--- output ---\n{(r.stdout + r.stderr)[-4000:]}"


def test_docs_python_blocks_compile() -> None:
    for path in [ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]:
        for i, code in enumerate(_blocks(path, ("python", "py"))):
            compile(code, f"{path.name} python block {i + 1}", "exec")


def _commands(text: str) -> list[list[str]]:
    """`shufflenet-edge ...` command lines of a shell block, continuations joined, comments dropped."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith(("shufflenet-edge ", ".venv/bin/shufflenet-edge ")):
            out.append(shlex.split(line))
    return out


@lru_cache(maxsize=None)
def _help(command: str) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-m", "shufflenet_edge", command, "--help"], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    return r.returncode, r.stdout + r.stderr


def _shell_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in _shell_files():
        for block in _blocks(path, ("bash", "sh", "shell", "console", "")):
            found += [(path.name, argv) for argv in _commands(block)]
    return found


def test_readme_has_shell_commands() -> None:
    names = {argv[1] for src, argv in _shell_commands() if src == "README.md"}
    assert {"export", "parity", "bench"} <= names, names


@pytest.mark.parametrize("source,argv", _shell_commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))
def test_shell_command_flags_exist(source: str, argv: list[str]) -> None:
    assert len(argv) >= 2 and not argv[1].startswith("-"), f"{source}: no command in {' '.join(argv)}"
    rc, text = _help(argv[1])
    assert rc == 0, f"{source}: `shufflenet-edge {argv[1]} --help` failed:\n{text[-2000:]}"
    flags = {a.split("=", 1)[0] for a in argv[2:] if a.startswith("--")}
    missing = sorted(f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text))
    assert not missing, f"{source}: `{' '.join(argv)}` uses {missing}, not in `shufflenet-edge {argv[1]} --help`"


def test_readme_links_resolve() -> None:
    # docs/design.md (the architecture page) is written separately; it is linked before it lands.
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    missing = [p for p in links if "://" not in p and p != "docs/design.md" and not (ROOT / p).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
