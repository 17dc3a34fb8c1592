"""``python -m ftdag``: the ``ftdag`` command line (:mod:`ftdag.cli`)."""

import sys

from .cli import main

# Guarded: worker processes (the process backend's forkserver) re-import the main module,
# here as ``__mp_main__``, and must not run the command again.
if __name__ == "__main__":
    sys.exit(main())
