import sys

from regfed.cli import main

sys.exit(main())
