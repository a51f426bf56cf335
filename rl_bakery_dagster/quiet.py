"""Known start-up noise of TensorFlow, TF-Agents and gym, kept off the user's terminal.

A run on a CPU machine used to print, before any of our own lines: absl's "All log messages
before absl::InitializeLog()", "Could not find cuda drivers" and "failed call to cuInit" (from
C++, ignoring `TF_CPP_MIN_LOG_LEVEL`), gym's "unmaintained" banner, TF-Agents' `SyntaxWarning`s,
a TF deprecation, absl's argument-name sanitising and "Could not serialize
policy.distribution()" twice per saved policy. None of them asks the user to do anything, and
together they hid the warnings that do.

Each is silenced by its exact text only, never by level or category: a genuine TensorFlow,
absl or gym warning still surfaces. The C++ lines are written straight to file descriptor 2, so
the first import of `tensorflow` and `gym` (and TensorFlow's first device listing, where cuInit
runs) happens with descriptor 2 sent to a scratch file whose lines are then replayed, minus the
known ones. The cuInit error is only dropped when the machine has no NVIDIA device: with a GPU it
is a real fault. Set `RL_BAKERY_VERBOSE=1` to see everything.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from types import ModuleType

NOISY_IMPORTS = frozenset({"tensorflow", "gym"})
"""Top-level packages whose import (or first device listing) writes noise to descriptor 2."""

STDERR_NOISE: tuple[str, ...] = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^[IW]\d{4} [\d:. ]+\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine",
    r"^I\d{4} [\d:. ]+\d+ \w+\.cc:\d+\] oneDNN custom operations are on",
    r"^Gym has been unmaintained since 2022 and does not support NumPy 2\.0",
    r"^Please upgrade to Gymnasium, the maintained drop-in replacement of Gym",
    r"^See the migration guide at https://gymnasium\.farama\.org/",
)
"""Whole lines written to descriptor 2 that are known noise."""

CPU_ONLY_STDERR_NOISE: tuple[str, ...] = (
    r"^E\d{4} [\d:. ]+\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*UNKNOWN ERROR \(303\)",
)
"""Lines that are noise only on a machine without an NVIDIA device."""

LOG_NOISE: tuple[str, ...] = (
    r"^WARNING: Could not serialize policy\.distribution\(\) for policy",
    r"^`[^`]+` is not a valid tf\.function parameter name\. Sanitizing to",
    r"^From .+: calling foldr_v2 \(from tensorflow\.python\.ops\.functional_ops\) with "
    r"back_prop=False is deprecated",
)
"""Messages of the `absl` and `tensorflow` Python loggers that are known noise."""


def has_nvidia_device() -> bool:
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def stderr_noise() -> list[re.Pattern[str]]:
    patterns = [*STDERR_NOISE, *([] if has_nvidia_device() else CPU_ONLY_STDERR_NOISE)]
    return [re.compile(p) for p in patterns]


def is_noise(line: str, patterns: Sequence[re.Pattern[str]]) -> bool:
    return any(p.search(line) for p in patterns)


_redirect_lock = threading.RLock()


def _flush_stderr() -> None:
    if sys.stderr is not None:
        sys.stderr.flush()


@contextlib.contextmanager
def filtered_stderr(patterns: Sequence[re.Pattern[str]]) -> Iterator[None]:
    """Sends descriptor 2 to a scratch file for the block, then replays its lines minus `patterns`.

    Lines written in the block by other threads are replayed too, only later.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon with stderr closed): nothing to filter
        yield
        return
    with _redirect_lock, tempfile.TemporaryFile(mode="w+b", prefix="rl_bakery_stderr_") as scratch:
        _flush_stderr()
        try:
            os.dup2(scratch.fileno(), 2)
            try:
                yield
            finally:
                _flush_stderr()
                os.dup2(saved, 2)
                scratch.seek(0)
                kept = [
                    line
                    for line in scratch.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_noise(line.rstrip("\n"), patterns)
                ]
                if kept:
                    os.write(2, "".join(kept).encode())
        finally:
            os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of a noisy package with descriptor 2 filtered."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def __getattr__(self, name: str) -> object:  # get_data, is_package, resource readers ...
        return getattr(self.loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with filtered_stderr(stderr_noise()):
            self.loader.exec_module(module)
            if module.__name__ == "tensorflow":
                module.config.list_physical_devices("GPU")  # cuInit runs (and fails on a CPU) here
        if module.__name__ == "tensorflow":
            filter_python_loggers()


class _QuietImports(importlib.abc.MetaPathFinder):
    """Finds `NOISY_IMPORTS` through the other finders and wraps their loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in NOISY_IMPORTS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


class _DropKnownMessages(logging.Filter):
    def __init__(self, patterns: Sequence[str]):
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        return not is_noise(record.getMessage(), self.patterns)


_log_filter = _DropKnownMessages(LOG_NOISE)


def filter_python_loggers() -> None:
    """Adds the message filter to TensorFlow's and absl's loggers (both exist once TF is imported).

    Not earlier: absl turns its logger into an `ABSLLogger` on import, which a logger we created
    first would not be.
    """
    for name in ("absl", "tensorflow"):
        logger = logging.getLogger(name)
        if _log_filter not in logger.filters:
            logger.addFilter(_log_filter)


def ignore_known_warnings() -> None:
    """Python warnings filters for the known noise, matched by message (and file, where it helps)."""
    # compile-time warnings name the file as their module; TF's autograph compiles TF-Agents' code again
    for module in (r".*[\\/]tf_agents[\\/]", r".*__autograph_generated_file"):
        warnings.filterwarnings("ignore", r'"is( not)?" with a literal', SyntaxWarning, module)
    warnings.filterwarnings("ignore", r".*The environment CartPole-v0 is out of date", UserWarning)
    warnings.filterwarnings(
        "ignore", r"Encoding a StructuredValue with type tfp\.distributions\.", UserWarning
    )


def silence_known_noise() -> None:
    """Installs the filters of this module once per process (no-op with RL_BAKERY_VERBOSE=1)."""
    if os.environ.get("RL_BAKERY_VERBOSE", "") not in ("", "0") or any(
        isinstance(f, _QuietImports) for f in sys.meta_path
    ):
        return
    ignore_known_warnings()
    if "tensorflow" in sys.modules:  # imported before this package: only its loggers can be filtered
        filter_python_loggers()
    sys.meta_path.insert(0, _QuietImports())
