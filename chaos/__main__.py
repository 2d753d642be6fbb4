"""`python -m chaos` is the `chaos` command, for machines where console scripts are not on PATH."""

import sys

from chaos.cli import main

sys.exit(main())
