"""The suite's own guards can fail: a test that leaks a thread is reported, not ignored."""

from __future__ import annotations

import pytest

from tests.conftest import REPO_ROOT

pytest_plugins = ["pytester"]


def test_a_leaked_thread_fails_the_test(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    pytester.makeconftest("from tests.conftest import no_thread_leaks  # noqa: F401\n")
    pytester.makepyfile(test_leak="""
        import threading, time

        def test_leaks():
            threading.Thread(target=time.sleep, args=(30,), name="leaky", daemon=True).start()

        def test_clean():
            thread = threading.Thread(target=time.sleep, args=(0.1,))
            thread.start()
            thread.join()
    """)
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test left threads running: leaky*"])
