"""`python -m course_lib ...`: see `course_lib.cli`."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
