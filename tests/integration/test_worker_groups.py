"""Which process holds which partitions, as an operator asks Kafka (kafka-consumer-groups.sh --describe)."""

from __future__ import annotations

import socket

import pytest
from kafka import KafkaAdminClient

from tests.production import ProductionStack
from tests.support import eventually

pytestmark = pytest.mark.production


@pytest.fixture
def stack():
    created = ProductionStack.create("groups")
    yield created
    created.destroy()


def members(admin: KafkaAdminClient, group: str) -> dict[str, int]:
    """Each member's client id and how many partitions it was assigned."""
    description = admin.describe_groups([group])[group]
    return {
        member["client_id"]: sum(
            len(each["partitions"]) for each in (member["member_assignment"] or {}).get("assigned_partitions", [])
        )
        for member in description["members"]
    }


def test_persisters_started_together_each_take_a_share_named_by_host_and_process(stack):
    group = stack.env["FITTRACK_PERSISTER_GROUP"]
    first, second = stack.start_persister(), stack.start_persister()
    admin = KafkaAdminClient(bootstrap_servers=stack.env["FITTRACK_KAFKA_BOOTSTRAP"], request_timeout_ms=10_000)
    try:
        held = eventually(
            lambda: members(admin, group),
            # Once the group has settled, each holds half of the stack's 4 readings partitions.
            lambda found: sorted(found.values()) == [2, 2],
            timeout=60,
            interval=0.5,
        )
    finally:
        admin.close()
    host = socket.gethostname()
    assert set(held) == {f"{group}@{host}:{first.pid}", f"{group}@{host}:{second.pid}"}
    # Starting together on a new database, neither fell over noting the store's layout.
    assert first.poll() is None and second.poll() is None
