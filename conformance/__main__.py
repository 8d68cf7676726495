"""``python -m conformance`` is ``attnconf``."""

import sys

from conformance.cli import main

sys.exit(main())
