"""A device's side of SyncReadings, as a wearable does it, for the simulator and the load generator.

The device numbers its batches and keeps every batch it has not had an ack
for in an outbox. It sends up to `window` batches before the first of them is
acknowledged. When the connection breaks (the device drops it on purpose, at
random, or the server ends the stream with UNAVAILABLE), it waits a random
backoff, reconnects, says hello, and resends what the outbox still holds
minus what the welcome says the server already has. The outbox is the truth:
a server that does not fill `missing_sequences` only makes the device resend
more, and the server answers DUPLICATE, which counts as delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import grpc

from fittrack.clients.channel import PLAINTEXT, Security, aio_channel
from fittrack.generated.v1 import account_pb2, account_pb2_grpc, metric_pb2, metric_pb2_grpc

# (metric kind, UTC seconds at the start of the minute, value): the shape of a Reading on the wire.
SimulatedReading = tuple[int, int, float]
# Gives the next batch's readings when the device has room to send one; None when it has nothing more to send.
BatchSource = Callable[[], Awaitable[Sequence[SimulatedReading] | None]]

Ack = metric_pb2.BatchAck
# The welcome lists missing sequences among the 64 below the last durable one, and the server's cursor
# remembers 63 of them: below that, "not listed" proves nothing, so such batches are resent.
SEQUENCE_WINDOW = 63
# Codes that refuse the device for good: it stops. After any other code it backs off and reconnects, as
# after UNAVAILABLE: RESOURCE_EXHAUSTED is the per-user stream limit, which a reconnecting device can hit while
# the server still holds its old stream, and a write racing the server's status fails with INTERNAL.
REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
# Each connection gets its own TCP connection, as separate devices (and a device after reconnecting) have;
# with gRPC's shared subchannel pool, closing a channel would not close the connection other devices use.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
REFRESH_MARGIN = timedelta(seconds=60)


def reading_message(metric: int, seconds: int, value: float) -> metric_pb2.Reading:
    reading = metric_pb2.Reading(metric=metric, value=value)
    reading.time.seconds = seconds
    return reading


class Resume(NamedTuple):
    """What a reconnecting device does with its outbox after the welcome."""

    delivered: list[int]  # the server holds these: drop them from the outbox
    resend: list[int]  # ascending


def plan_resume(outbox: Iterable[int], last_durable: int, missing: Iterable[int] = ()) -> Resume:
    """Split the outbox's sequences into those the welcome says the server holds and those to resend."""
    missing = set(missing)
    delivered, resend = [], []
    for sequence in sorted(outbox):
        held = sequence <= last_durable and last_durable - sequence <= SEQUENCE_WINDOW and sequence not in missing
        (delivered if held else resend).append(sequence)
    return Resume(delivered, resend)


def backoff_delay(attempt: int, jitter: float, base: float, cap: float) -> float:
    """Exponential backoff with jitter: `jitter` in [0, 1) picks a point in the upper half of the step.

    Keeping at least half the step spreads reconnecting devices out without letting any retry at once.
    """
    return min(cap, base * 2**attempt) * (0.5 + 0.5 * jitter)


class UserSession:
    """A user's tokens, shared by the user's devices; refreshed shortly before the access token expires."""

    def __init__(self, accounts: account_pb2_grpc.AccountServiceStub, username: str, password: str, login) -> None:
        self._accounts = accounts
        self.username = username
        self._password = password
        self._login: account_pb2.LoginResponse = login
        self._lock = asyncio.Lock()

    @classmethod
    async def register(
        cls, accounts: account_pb2_grpc.AccountServiceStub, username: str, password: str, time_zone: str
    ) -> UserSession:
        profile = account_pb2.ProfileFields(time_zone=time_zone)
        await accounts.Register(
            account_pb2.RegisterRequest(username=username, password=password, profile=profile), timeout=60
        )
        login = await accounts.Login(account_pb2.LoginRequest(username=username, password=password), timeout=60)
        return cls(accounts, username, password, login)

    @property
    def user_id(self) -> str:
        return self._login.user_id

    @property
    def access_token(self) -> str:
        return self._login.access_token

    async def metadata(self) -> list[tuple[str, str]]:
        expires = self._login.access_token_expires_at.ToDatetime(UTC)
        if expires - datetime.now(UTC) < REFRESH_MARGIN:
            await self.renew(self._login.access_token)
        return [("authorization", f"Bearer {self._login.access_token}")]

    async def renew(self, stale_token: str) -> None:
        """Get a new session, unless another device of the user already replaced `stale_token`."""
        async with self._lock:
            if self._login.access_token != stale_token:
                return
            try:
                request = account_pb2.RefreshTokenRequest(refresh_token=self._login.refresh_token)
                self._login = await self._accounts.RefreshToken(request, timeout=30)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAUTHENTICATED:
                    raise
                request = account_pb2.LoginRequest(username=self.username, password=self._password)
                self._login = await self._accounts.Login(request, timeout=60)


@dataclass(frozen=True)
class SyncBehaviour:
    """How a device syncs: its window, how often it loses the connection, how it backs off."""

    window: int = 4
    disconnect_rate: float = 0.0  # chance, per batch sent for the first time, of dropping the connection after it
    base_backoff: float = 0.1
    max_backoff: float = 2.0
    ack_timeout: float = 30.0  # a connection whose oldest batch in flight waits longer counts as broken
    max_failures: int = 8  # connections in a row that fail without an ack before the device gives up


@dataclass
class DeviceStats:
    """What one device did; batches and readings count each batch once, however often it was resent."""

    device_id: str
    batches: int = 0
    readings: int = 0
    sent: int = 0  # writes, resends included
    resent: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    trimmed: int = 0  # dropped from the outbox because a welcome said the server held them
    readings_accepted: int = 0
    readings_delivered: int = 0  # in batches accepted, duplicate or trimmed
    drops: int = 0  # connections the device dropped on purpose
    # Hellos gRPC could not send because the server had just ended the call (a refusal): tried again, and the
    # next attempt hears the server's reason. Not a server error: the server's status never reached the device.
    lost_hellos: int = 0
    reconnects: int = 0
    server_errors: Counter[str] = field(default_factory=Counter)
    anomalies: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    ack_latencies: list[float] = field(default_factory=list)
    unacknowledged: int = 0  # left in the outbox when the device stopped
    error: str | None = None  # why the device gave up

    @property
    def delivered(self) -> int:
        return self.accepted + self.duplicate + self.trimmed


class _Drop(NamedTuple):
    close_channel: bool  # else cancel the call: a reset stream rather than a lost connection
    pause: float  # how long after the write, so that some acks arrive first
    jitter: float


class _Dropped(Exception):
    pass


class _Broken(Exception):
    """The connection ended or stalled without a status to go by."""


class _HelloLost(Exception):
    """gRPC failed to send the hello because the server had ended the call, and kept no status but its own."""


def _lost_write(error: grpc.aio.AioRpcError) -> bool:
    """The status gRPC gives a call whose write it could not send: its own INTERNAL, not the server's."""
    return error.code() == grpc.StatusCode.INTERNAL and error.details() == "Internal error from Core"


@dataclass
class _Flight:
    """The batches in flight on one connection: sequence -> when it was written."""

    sent: dict[int, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False


class DeviceSync:
    """One device syncing everything its source gives over SyncReadings, reconnecting as often as needed."""

    def __init__(
        self,
        address: str,
        device_id: str,
        session: UserSession,
        source: BatchSource,
        behaviour: SyncBehaviour,
        rng: random.Random,
        security: Security = PLAINTEXT,
        options: Sequence[tuple[str, object]] = CHANNEL_OPTIONS,
    ) -> None:
        self._address = address
        self._security = security
        self._options = list(options)
        self._device_id = device_id
        self._session = session
        self._source = source
        self._behaviour = behaviour
        # Drops are drawn once per new batch, in sequence order, so a seed gives the same drops every run;
        # what the server does (errors, timing) draws from another generator and cannot shift them.
        self._rng = rng
        self._retry_rng = random.Random(rng.getrandbits(64))
        self.outbox: dict[int, metric_pb2.ReadingBatch] = {}
        self._drops: dict[int, _Drop] = {}
        self._written: set[int] = set()  # outbox batches sent at least once
        self._next_sequence = 0  # set from the first welcome
        self._exhausted = False
        self._failures = 0  # connections in a row without an ack
        self._renewed = False  # the session was renewed since the last ack
        self._token = ""
        self.stats = DeviceStats(device_id)

    async def run(self) -> DeviceStats:
        while True:
            delay = 0.0
            try:
                await self._connection()
                break
            except _Dropped as dropped:
                self.stats.drops += 1
                delay = backoff_delay(0, dropped.args[0], self._behaviour.base_backoff, self._behaviour.max_backoff)
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code == grpc.StatusCode.UNAUTHENTICATED and not self._renewed:
                    # The access token expired between two connections; one renewal, then it is a real refusal.
                    self._renewed = True
                    await self._session.renew(self._token)
                elif code in REFUSALS:
                    self.stats.error = f"{code.name}: {error.details()}"
                    break
                else:
                    self.stats.server_errors[code.name] += 1
                    self._failures += 1
                    delay = self._retry_delay()
            except _Broken as broken:
                self.stats.anomalies.append(str(broken))
                self._failures += 1
                delay = self._retry_delay()
            except _HelloLost:
                self.stats.lost_hellos += 1
                self._failures += 1
                delay = self._retry_delay()
            if self._failures > self._behaviour.max_failures:
                self.stats.error = f"gave up after {self._failures} failed connections in a row"
                break
            self.stats.reconnects += 1
            await asyncio.sleep(delay)
        self.stats.unacknowledged = len(self.outbox)
        return self.stats

    def _retry_delay(self) -> float:
        behaviour = self._behaviour
        return backoff_delay(self._failures, self._retry_rng.random(), behaviour.base_backoff, behaviour.max_backoff)

    async def _connection(self) -> None:
        """One connection, until everything is acknowledged (returns) or it breaks (raises)."""
        metadata = await self._session.metadata()
        self._token = self._session.access_token
        channel = aio_channel(self._address, self._security, options=self._options)
        reader: asyncio.Task | None = None
        try:
            call = metric_pb2_grpc.MetricServiceStub(channel).SyncReadings(metadata=metadata)
            await self._hello(call)
            resend = [self.outbox[sequence] for sequence in self._resume(await self._welcome(call))]
            flight = _Flight()
            reader = asyncio.create_task(self._read_acks(call, flight))
            while not flight.closed:
                await self._wait_for_room(flight)
                if flight.closed:
                    break
                batch = resend.pop(0) if resend else await self._new_batch()
                if batch is None:
                    break
                await self._write(call, reader, flight, batch)
                drop = self._drops.pop(batch.sequence, None)
                if drop is not None:
                    await self._drop(call, channel, drop)
            if not flight.closed:
                # If the call is over already, the reader has its status.
                with contextlib.suppress(asyncio.InvalidStateError, grpc.aio.AioRpcError):
                    await call.done_writing()
            await reader  # raises the call's error, if it ended with one
            if self.outbox:
                raise _Broken(f"the stream ended with {len(self.outbox)} batch(es) unacknowledged")
        finally:
            try:
                if reader is not None:
                    # Whatever the reader ended with was raised above already, or is moot after a drop.
                    reader.cancel()
                    await asyncio.wait({reader})
                    if not reader.cancelled():
                        reader.exception()
            finally:
                await channel.close(grace=None)

    async def _hello(self, call) -> None:
        try:
            await call.write(metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id=self._device_id)))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            # The server may end the call (a refusal: RESOURCE_EXHAUSTED, UNAUTHENTICATED) while the hello is
            # on its way; gRPC then reports the lost write as its own INTERNAL. The call's status says why,
            # unless gRPC failed the call itself before the server's status arrived: then nothing does.
            try:
                await call.read()  # raises the call's error
            except grpc.aio.AioRpcError as error:
                if _lost_write(error):
                    raise _HelloLost() from error
                raise
            raise

    async def _welcome(self, call) -> metric_pb2.SyncWelcome:
        try:
            response = await asyncio.wait_for(call.read(), self._behaviour.ack_timeout)
        except TimeoutError:
            raise _Broken(f"no welcome within {self._behaviour.ack_timeout} s") from None
        if response is grpc.aio.EOF:
            raise _Broken("the stream ended before the welcome")
        if response.WhichOneof("message") != "welcome":
            raise _Broken(f"the server answered the hello with {response.WhichOneof('message')!r}")
        return response.welcome

    def _resume(self, welcome: metric_pb2.SyncWelcome) -> list[int]:
        """Trim the outbox by the welcome; returns the sequences to resend."""
        if not self._next_sequence:
            # Numbering after what the server holds keeps a reinstalled device's batches from passing as resends.
            self._next_sequence = welcome.last_durable_sequence + 1
        plan = plan_resume(self.outbox, welcome.last_durable_sequence, welcome.missing_sequences)
        for sequence in plan.delivered:
            self.stats.readings_delivered += len(self.outbox.pop(sequence).readings)
            self._written.discard(sequence)
            self.stats.trimmed += 1
        return plan.resend

    async def _new_batch(self) -> metric_pb2.ReadingBatch | None:
        if self._exhausted:
            return None
        readings = await self._source()
        if readings is None:
            self._exhausted = True
            return None
        sequence = self._next_sequence
        self._next_sequence += 1
        batch = metric_pb2.ReadingBatch(
            device_id=self._device_id, sequence=sequence, readings=[reading_message(*r) for r in readings]
        )
        # Into the outbox before the write: a batch counts as sent from the moment it might have left.
        self.outbox[sequence] = batch
        self.stats.batches += 1
        self.stats.readings += len(readings)
        if self._rng.random() < self._behaviour.disconnect_rate:
            pause = 0.0 if self._rng.random() < 0.5 else self._rng.uniform(0, 0.05)
            self._drops[sequence] = _Drop(self._rng.random() < 0.5, pause, self._rng.random())
        return batch

    async def _wait_for_room(self, flight: _Flight) -> None:
        while len(flight.sent) >= self._behaviour.window and not flight.closed:
            flight.changed.clear()
            await flight.changed.wait()

    async def _write(self, call, reader: asyncio.Task, flight: _Flight, batch: metric_pb2.ReadingBatch) -> None:
        flight.sent[batch.sequence] = asyncio.get_running_loop().time()
        self.stats.sent += 1
        if batch.sequence in self._written:
            self.stats.resent += 1
        self._written.add(batch.sequence)
        try:
            await call.write(metric_pb2.SyncReadingsRequest(batch=batch))
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError) as error:
            # The call is over. A write racing the server's status fails with INTERNAL or no status at all;
            # the reader hears the status itself, which says why.
            await asyncio.wait({reader}, timeout=self._behaviour.ack_timeout)
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                raise reader.exception() from None
            if isinstance(error, grpc.aio.AioRpcError):
                raise
            raise _Broken("the stream ended while batches were still to be sent") from None

    async def _drop(self, call, channel: grpc.aio.Channel, drop: _Drop) -> None:
        if drop.pause:
            await asyncio.sleep(drop.pause)
        if drop.close_channel:
            await channel.close(grace=None)
        else:
            call.cancel()
        raise _Dropped(drop.jitter)

    async def _read_acks(self, call, flight: _Flight) -> None:
        try:
            while True:
                response = await self._read_watched(call, flight)
                if response is grpc.aio.EOF:
                    return
                if response.WhichOneof("message") != "ack":
                    self.stats.anomalies.append(f"a {response.WhichOneof('message')!r} where an ack was due")
                    continue
                self._settle(response.ack, flight)
        finally:
            flight.closed = True
            flight.changed.set()

    async def _read_watched(self, call, flight: _Flight):
        """The next response; raises _Broken when the oldest batch in flight has waited too long for its ack."""
        loop = asyncio.get_running_loop()
        read = asyncio.ensure_future(call.read())
        try:
            while True:
                done, _ = await asyncio.wait({read}, timeout=self._behaviour.ack_timeout)
                if done:
                    return read.result()
                if flight.sent and loop.time() - min(flight.sent.values()) > self._behaviour.ack_timeout:
                    raise _Broken(f"no ack within {self._behaviour.ack_timeout} s")
        finally:
            if not read.done():
                read.cancel()
            elif not read.cancelled():
                read.exception()  # retrieved: it was raised above, or the reader was cancelled as it came

    def _settle(self, ack: metric_pb2.BatchAck, flight: _Flight) -> None:
        sent_at = flight.sent.pop(ack.sequence, None)
        flight.changed.set()
        if sent_at is None or ack.sequence not in self.outbox:
            self.stats.anomalies.append(f"an ack for batch {ack.sequence}, which was not in flight")
            return
        self.stats.ack_latencies.append(asyncio.get_running_loop().time() - sent_at)
        batch = self.outbox.pop(ack.sequence)
        self._written.discard(ack.sequence)
        self._failures, self._renewed = 0, False
        if ack.status == Ack.STATUS_ACCEPTED:
            self.stats.accepted += 1
            self.stats.readings_accepted += ack.readings_accepted
            self.stats.readings_delivered += len(batch.readings)
        elif ack.status == Ack.STATUS_DUPLICATE:
            self.stats.duplicate += 1
            self.stats.readings_delivered += len(batch.readings)
        else:
            # The device cannot make an invalid batch valid: resending it unchanged would be rejected again.
            self.stats.rejected += 1
            self.stats.rejections.append(rejection(ack.sequence, ack.reason))


async def register_users(
    accounts: account_pb2_grpc.AccountServiceStub,
    usernames: Sequence[str],
    time_zone: str,
    concurrency: int = 8,
) -> list[UserSession]:
    """Register and log in fresh users, a few at a time: bcrypt makes each of them cost the server real CPU."""
    gate = asyncio.Semaphore(concurrency)

    async def one(username: str) -> UserSession:
        async with gate:
            return await UserSession.register(accounts, username, secrets.token_urlsafe(18), time_zone)

    return list(await asyncio.gather(*(one(name) for name in usernames)))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.5 for the median); 0 without values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def rejection(sequence: int, reason: str) -> str:
    """A rejected batch, named once: the server's reason names the batch itself (by device and sequence)."""
    return reason if reason.startswith("batch ") else f"batch {sequence}: {reason}"
