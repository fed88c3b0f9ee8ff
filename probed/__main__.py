"""`python -m probed`: the same as the `probed` command."""

import sys

from probed.cli import main

sys.exit(main())
