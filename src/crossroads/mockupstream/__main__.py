"""Entry point for `python -m crossroads.mockupstream`."""

from crossroads.mockupstream.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
