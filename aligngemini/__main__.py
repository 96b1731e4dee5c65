import sys

from aligngemini.cli import main

sys.exit(main())
