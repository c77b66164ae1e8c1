"""``python -m dgm.grading SUBMISSIONS --key KEY``: the same as ``dgm-grade``."""

import sys

from dgm.grading.grade import main

sys.exit(main())
