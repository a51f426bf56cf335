"""Known noise is dropped by its exact text while anything else still reaches the user.

The end-to-end proof is in `test_cli.py` (a real `dagster job execute` whose stderr holds none
of the known noise); these cases check, without a run, that the filters do not swallow genuine
output: other C++ lines, other absl and TensorFlow warnings, the same SyntaxWarning in user code.
"""

import logging
import os
import warnings

import pytest

from rl_bakery_dagster.quiet import (
    filter_python_loggers,
    filtered_stderr,
    ignore_known_warnings,
    stderr_noise,
)


def test_descriptor_2_keeps_every_line_but_the_known_ones(capfd: pytest.CaptureFixture[str]) -> None:
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796005761.794992   23532 cudart_stub.cc:31] Could not find cuda drivers on your "
        "machine, GPU will not be used.",
        "Gym has been unmaintained since 2022 and does not support NumPy 2.0 amongst other critical "
        "functionality.",
    ]
    genuine = [
        "E0000 00:00:1796005797.051432   23532 some_kernel.cc:52] a genuine TensorFlow error",
        "Traceback (most recent call last):",
        "I0000 00:00:1.0 1 cudart_stub.cc:99] another message of the same file",
    ]
    with filtered_stderr(stderr_noise()):
        for line in [*noise, *genuine]:
            os.write(2, f"{line}\n".encode())
    assert capfd.readouterr().err.splitlines() == genuine


def test_absl_and_tensorflow_loggers_drop_only_the_known_messages(caplog: pytest.LogCaptureFixture) -> None:
    import absl.logging  # noqa: F401  (absl's own logger class first, as when TensorFlow imports it)

    filter_python_loggers()  # what importing TensorFlow through the package does (test_cli.py runs that)

    with caplog.at_level(logging.WARNING):
        logging.getLogger("absl").warning(
            'WARNING: Could not serialize policy.distribution() for policy "<EpsilonGreedyPolicy>".'
        )
        logging.getLogger("absl").warning(
            "`0/step_type` is not a valid tf.function parameter name. Sanitizing to `arg_0_step_type`."
        )
        logging.getLogger("absl").warning("a genuine absl warning")
        logging.getLogger("tensorflow").warning("a genuine TensorFlow warning")
    assert [r.getMessage() for r in caplog.records] == [
        "a genuine absl warning",
        "a genuine TensorFlow warning",
    ]


def test_the_syntax_warning_is_ignored_in_tf_agents_only() -> None:
    source = "state = ()\nempty = state is ()\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ignore_known_warnings()
        compile(source, "/venv/lib/python3.11/site-packages/tf_agents/utils/common.py", "exec")
        compile(source, "/tmp/__autograph_generated_file1234.py", "exec")
        compile(source, "/home/me/my_application.py", "exec")
    assert [(w.category, w.filename) for w in caught] == [(SyntaxWarning, "/home/me/my_application.py")]
