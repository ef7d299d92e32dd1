"""``python -m slim_leakage.cli`` (also what ``accelerate launch -m`` runs)."""

import sys

from .main import main

sys.exit(main())
