"""Put the repository root on ``sys.path`` so the scripts in tools/ run from any folder without installing."""

import sys
from pathlib import Path

REPOSITORY = str(Path(__file__).resolve().parents[1])
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)
