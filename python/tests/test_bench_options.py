"""The option-comparing benchmarks refuse an option string given twice
before they touch the GPU: each option's graph and times are kept under
its string, so a second one would replace the first's."""

import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench")


@pytest.mark.parametrize("tool", ["compare_backward.py", "compare_options.py"])
def test_repeated_option_is_an_error(tool):
    run = subprocess.run([sys.executable, os.path.join(BENCH, tool), "", "stages=3", ""],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "options given more than once: ['']" in run.stderr
