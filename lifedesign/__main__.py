import sys

from lifedesign.cli import main

sys.exit(main())
