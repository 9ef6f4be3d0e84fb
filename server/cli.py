"""Entry point of the ``bi`` console script."""

from __future__ import annotations

from .app import BIApp


def main() -> None:
    BIApp.launch_instance()


if __name__ == "__main__":
    main()
