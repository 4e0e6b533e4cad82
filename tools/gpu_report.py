"""`make gpu-report` under its old name: `python tools/gpu_report.py ARGS` is `python -m course_lib gpu-report ARGS`."""
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's course_lib, installed or not
    from course_lib.commands import main
    raise SystemExit(main(["gpu-report", *sys.argv[1:]]))
