"""`python -m faults.proxy`: what the Compose sidecar runs."""

from __future__ import annotations

import sys

from faults.proxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
