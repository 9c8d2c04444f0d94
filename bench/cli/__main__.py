"""``python -m ganbench.cli``: the ``ganbench`` command."""

import sys

from ganbench.cli.main import main

sys.exit(main())
