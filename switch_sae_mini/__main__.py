"""``python -m switch_sae_mini <subcommand>``: see cli/__init__.py (``--help`` lists the subcommands)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
