"""`python -P -m gate.run.worker JOB_DIR`: the worker process (gate.run.worker.main)."""
import sys

from gate.run.worker.main import main

sys.exit(main(sys.argv[1]))
