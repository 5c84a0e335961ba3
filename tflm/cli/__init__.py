"""The `tflm` command line: each command parses its options, calls one library function, and prints.

TensorFlow is imported inside the commands, so `tflm --help` answers at once. The console script is
`entry`, which hides TensorFlow's C++ log lines (`tflm.log.hide_native_logs`) unless `--verbose` or
`TFLM_VERBOSE=1`; `main` is the click group itself (what tests invoke).
"""

import os
import sys

from tflm.cli import _classify, _data, _deploy, _extract, _predict, _train  # noqa: F401  (they add their commands to `main`)
from tflm.cli._common import main


def entry():
    """The `tflm` console script."""
    if "--verbose" not in sys.argv[1:2] and not os.environ.get("TFLM_VERBOSE"):
        from tflm.log import hide_native_logs

        hide_native_logs()
    main()


__all__ = ["entry", "main"]
