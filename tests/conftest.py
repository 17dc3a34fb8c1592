"""Suite-wide checks: no leaked worker threads or processes after any test, the GIL stays off
on free-threaded builds, and per-test timeouts that follow ``FTDAG_TEST_TIMEOUT``."""

import multiprocessing
import sys

import pytest
from helpers import check_no_leaks

from ftdag.testing import DEFAULT_TIMEOUT

# Worker processes (the process backend's, and ftdag.testing's managers) start as forks of
# multiprocessing's forkserver.  Preloaded there, what they import is imported once per test
# session instead of once per worker.  That matters on a busy machine: there, on 3.13t, each
# module a new process imports costs ~0.1 s (closing each file it reads takes a lock the
# thread already holds, which spins on sched_yield before it parks), so a worker that
# imported ftdag, pytest and a test module took 5-20 s to start instead of 0.2.
multiprocessing.set_forkserver_preload(
    ["ftdag", "ftdag._processes", "ftdag.testing", "multiprocessing.sharedctypes", "cloudpickle", "pytest", "helpers"]
)


def pytest_collection_modifyitems(config, items):
    """Scale every test's timeout (the ini's, or its own marker's) with ``FTDAG_TEST_TIMEOUT``:
    the ini's 300 s is ten times the default 30 s wait."""
    factor = DEFAULT_TIMEOUT / 30.0
    if factor == 1.0:
        return
    default = float(config.getini("timeout") or 0)
    for item in items:
        marker = item.get_closest_marker("timeout")
        if marker is None:
            base = default
        else:
            base = float(marker.args[0] if marker.args else marker.kwargs.get("timeout", default))
        if base > 0:
            item.add_marker(pytest.mark.timeout(base * factor), append=False)


@pytest.fixture(autouse=True)
def _no_leaks(request):
    """After each test, as CPython's executor tests do: every ``ftdag-worker-*`` thread has
    exited, and no child process is left but those a wider-scoped fixture keeps on purpose
    (``helpers.kept_by_fixture``)."""
    yield
    check_no_leaks(request.node.nodeid)


@pytest.fixture(scope="session", autouse=True)
def _gil_stays_off():
    """On a free-threaded build, no test dependency may have turned the GIL back on."""
    yield
    import sysconfig

    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        assert sys._is_gil_enabled() is False, "the GIL was re-enabled during the test run"
