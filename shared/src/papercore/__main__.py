import sys

from papercore.app import main

sys.exit(main())
