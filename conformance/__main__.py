"""``python -m conformance`` is ``attnconf``."""

import sys

from conformance.frontends.cli import main

sys.exit(main())
