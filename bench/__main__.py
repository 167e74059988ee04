"""`make bench`: run every benchmark, one JSON line each."""

import asyncio

from bench import ingest


def main() -> None:
    asyncio.run(ingest.main())


if __name__ == "__main__":
    main()
