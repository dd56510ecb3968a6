import sys

from yolospan.cli import main

sys.exit(main())
