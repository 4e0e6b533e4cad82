"""`python -m course_lib ...`: the commands of `course_lib.commands`."""
from .commands import main

if __name__ == "__main__":
    raise SystemExit(main())
