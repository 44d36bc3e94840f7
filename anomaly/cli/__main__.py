"""``python -m anomaly.cli <command> ...``: the ``s3r`` command without installing the package."""

import sys

from anomaly.cli.command import main

sys.exit(main())
