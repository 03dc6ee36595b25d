"""`python -m workqueue` runs the command line, as the `workqueue` script does."""

import sys

from workqueue.cli import main

sys.exit(main())
