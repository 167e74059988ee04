"""Fittrack-side tasks of the cluster script, run with the project's virtualenv (it imports the fittrack package).

    app_tasks.py migrate                       # inside one host's namespace, with that host's env
    app_tasks.py verify URI URI ...            # a document written through the first FerretDB, read through the rest
    app_tasks.py groups BOOTSTRAP GROUP ...    # consumer group members' hosts, as JSON

`migrate` creates the metric store's collections through this host's FerretDB (FerretDB 1.x caches the
collection list per instance: infra/cluster/README.md), runs fittrack-migrate, and creates the Kafka topics
with the configured replication factor, so no Fittrack process has to create anything at start.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path

# this directory's kafka.py (the broker role) would shadow kafka-python
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def migrate() -> int:
    import pymongo

    from fittrack.app.config import Config
    from fittrack.app.migrate import migrate as fittrack_migrate
    from fittrack.app.stores import ensure_kafka_topics
    from fittrack.core.adapters.kafka import ensure_topics
    from fittrack.core.adapters.mongo_layout import COLLECTION, META_COLLECTION, MINUTES_COLLECTION

    config = Config.from_env()
    client = pymongo.MongoClient(config.mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        db = client[config.mongo_database]
        existing = set(db.list_collection_names())
        created = []
        for name in (COLLECTION, MINUTES_COLLECTION, META_COLLECTION):
            if name not in existing:
                db.create_collection(name)
                created.append(name)
    finally:
        client.close()
    version = fittrack_migrate(config)  # account schema, then the metric store's indexes and layout
    ensure_kafka_topics(config, ensure_topics)
    print(json.dumps({"schema_version": version, "collections_created": created}))
    return 0


def verify(uris: list[str]) -> int:
    """A document written through the first FerretDB is readable through every other one."""
    import pymongo

    from fittrack.core.adapters.mongo_layout import META_COLLECTION

    clients = [pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) for uri in uris]
    key = f"cluster-check-{secrets.token_hex(4)}"
    try:
        writer = clients[0]["fittrack"][META_COLLECTION]
        writer.insert_one({"_id": key, "at": time.time()})
        missing = [
            uri
            for uri, c in zip(uris[1:], clients[1:], strict=True)
            if c["fittrack"][META_COLLECTION].find_one({"_id": key}) is None
        ]
        writer.delete_one({"_id": key})
    finally:
        for c in clients:
            c.close()
    if missing:
        print(f"written through {uris[0]} but not readable through {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"written through {uris[0]}, read through {', '.join(uris[1:])}")
    return 0


def groups(bootstrap: str, names: list[str]) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        described = admin.describe_groups(names)
    finally:
        admin.close()
    out = {}
    for name in names:
        group = described.get(name) or {}
        out[name] = {
            "state": group.get("group_state"),
            "hosts": sorted(str(m.get("client_host", "")).lstrip("/") for m in group.get("members") or []),
        }
    print(json.dumps(out))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["migrate"]:
        return migrate()
    if argv[:1] == ["verify"] and len(argv) >= 3:
        return verify(argv[1:])
    if argv[:1] == ["groups"] and len(argv) >= 3:
        return groups(argv[1], argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
