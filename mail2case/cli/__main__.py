"""``python -m mail2case.cli``: the command line, as the console script runs it."""

import sys

from mail2case.cli.main import main

sys.exit(main())
