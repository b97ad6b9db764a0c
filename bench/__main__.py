"""
``python -m bench``: see L{bench.run.main}.
"""

import sys

from bench.run import main

sys.exit(main())
