import sys

from papercore.geometry.cli import main

sys.exit(main())
