#!/usr/bin/env bash
# One entry point for the README's two commands:
#   bash scripts/setup.sh main   # set up, then export the default model to int8 TFLite, parity report, local benchmark
#   bash scripts/setup.sh test   # set up, then run the test suite
# Set-up: a virtual environment in .venv, torch pinned to the CPU build (constraints.txt) so pip never
# resolves a multi-GB CUDA build, the package in editable mode, and the system packages the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-main}"
PY="${PYTHON:-python3}"

if [ "$what" = "test" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    # Real components for the tests: sshd on loopback, qemu-user for aarch64, adb, JUnit 4.
    need=""
    for pkg in openssh-server openssh-client qemu-user-static adb junit4; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
    done
    if [ -n "$need" ]; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
    fi
fi

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"

case "$what" in
    test)
        set +e
        # Two workers (pytest-xdist), one test file each at a time: a file's module fixtures stay in one process,
        # and the workers share one cache (tests/conftest.py), so what is trained or unpacked is built once.
        .venv/bin/python -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadfile --durations=25
        rc=$?
        set -e
        if [ "$rc" = "5" ]; then echo "no tests ran: failing"; exit 1; fi
        exit "$rc"
        ;;
    main)
        # The design card's job on the default model (shufflenet_v2_x1_0, random weights unless you pass
        # --weights to export; synthetic calibration unless --calib DIR):
        se=.venv/bin/shufflenet-edge
        $se export --target tflite --int8                          # -> out/shufflenet_v2_x1_0_int8.tflite (+ .json)
        $se export --target tflite                                 # fp32 beside it, for the comparison
        $se parity out/shufflenet_v2_x1_0_int8.tflite out/shufflenet_v2_x1_0_fp32.tflite \
            --synthetic 32 --json out/parity.json
        $se bench out/shufflenet_v2_x1_0_int8.tflite out/shufflenet_v2_x1_0_fp32.tflite \
            --threads 1,2 --json out/bench/bench.json --plot out/bench/bench.png
        echo "main job done: artifacts and reports in out/"
        ;;
    *)
        echo "usage: bash scripts/setup.sh main|test" >&2; exit 2;;
esac
