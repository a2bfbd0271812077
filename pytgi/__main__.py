import sys

from pytgi.cli import main

sys.exit(main())
