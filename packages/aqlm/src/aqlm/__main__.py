"""``python -m aqlm``: the ``aqlm`` command line (what ``torchrun ... -m aqlm quantize`` runs)."""

import sys

from aqlm.cli import main

if __name__ == "__main__":
    sys.exit(main())
