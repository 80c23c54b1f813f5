"""``python -m petcut.storage purge``: delete expired images of the configured store (run it from cron)."""

from __future__ import annotations

import argparse
import sys

from petcut.config import SettingsError, load_settings
from petcut.storage import StorageError, open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m petcut.storage", description=__doc__)
    parser.add_argument("command", choices=["purge"], help="purge: delete images past their tier's retention")
    parser.parse_args(argv)
    try:
        store = open_store(load_settings())
        deleted = store.purge_expired()
    except (SettingsError, ValueError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{store!r}: deleted {len(deleted)} expired image(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
