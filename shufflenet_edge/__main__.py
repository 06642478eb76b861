import sys

from shufflenet_edge.cli import main

sys.exit(main())
