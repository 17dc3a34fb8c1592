"""Suite-wide checks."""

import sys

import pytest


@pytest.fixture(scope="session", autouse=True)
def _gil_stays_off():
    """On a free-threaded build, no test dependency may have turned the GIL back on."""
    yield
    import sysconfig

    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        assert sys._is_gil_enabled() is False, "the GIL was re-enabled during the test run"
