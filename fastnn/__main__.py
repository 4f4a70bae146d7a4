"""`python -m fastnn ...` runs the `fastnn` command (for notebooks and machines where the script
is not on PATH)."""
import sys

from fastnn.cli import main

sys.exit(main())
