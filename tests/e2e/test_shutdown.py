"""SIGTERM during ongoing transfers: a real node reports NOT_SERVING, lets calls in flight finish
within its grace period, exits 0; after a restart every transfer settles and the audit is clean."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest
from federation_support import audit, fund, open_account, running_federation, statuses

from regfed.certs.identity import Role
from regfed.gateway._generated.health.v1 import health_pb2, health_pb2_grpc
from regfed.gateway.transport import channel_credentials
from regfed.local import Federation, RegistryClient, TransferFailed
from regfed.local.processes import node_log

pytestmark = pytest.mark.e2e

GRACE = 6.0
SENDERS = 4


def _health_channel(federation: Federation, code: str) -> grpc.Channel:
    chain, key = federation.credential(code, Role.REGISTRY)
    credentials = channel_credentials(
        federation.ca.read_bytes(), chain.read_bytes(), key.read_bytes()
    )
    return grpc.secure_channel(federation.endpoint(code), credentials)


def _watch(federation: Federation, code: str, seen: list[str], ended: threading.Event) -> None:
    """Follow the node's health stream until the node ends it."""
    with _health_channel(federation, code) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            for reply in stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60):
                seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
        except grpc.RpcError as error:
            seen.append(f"error {error.code().name}")
        ended.set()


def test_sigterm_drains_then_exits_zero_and_a_restart_settles_everything(tmp_path: Path) -> None:
    with running_federation(tmp_path, ["PA", "NY"], shutdown_grace=GRACE) as (federation, local):
        source = open_account(federation, "PA", "trader1")
        target = open_account(federation, "NY", "trader1")
        fund(federation, "PA", source, 10_000)

        settled_ids: list[str] = []
        refused: list[str] = []  # request ids whose proposal got no answer
        failures: set[str] = set()
        stop_sending = threading.Event()
        lock = threading.Lock()

        def send() -> None:
            with RegistryClient(federation, "PA", timeout=10) as pa:
                while not stop_sending.is_set():
                    request_id = uuid.uuid4().hex
                    try:
                        # A long poll: in flight on the node until the transfer settles.
                        t = pa.propose(source, target, quantity=1, request_id=request_id, wait_s=20)
                    except TransferFailed as error:
                        with lock:
                            refused.append(request_id)
                            failures.add(error.status)
                        time.sleep(0.05)
                        continue
                    with lock:
                        settled_ids.append(t["transfer_id"])

        seen: list[str] = []
        ended = threading.Event()
        watcher = threading.Thread(target=_watch, args=(federation, "PA", seen, ended))
        watcher.start()
        senders = [threading.Thread(target=send) for _ in range(SENDERS)]
        for s in senders:
            s.start()
        time.sleep(1.5)
        assert settled_ids, "no transfer went through before the stop"

        process = local.processes["PA"]
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=GRACE + 10)
        took = time.monotonic() - began
        assert process.returncode == 0
        assert took < GRACE + 3, f"stopping took {took:.1f} s, grace is {GRACE} s"
        local.wait_exit("PA", 1)
        stop_sending.set()
        for s in senders:
            s.join(30)

        # Calls in flight were answered (long polls with the transfer as it stood); calls after
        # the signal were refused, none cut off by the grace period running out (CANCELLED).
        assert failures <= {"UNAVAILABLE"}, failures
        # Health said NOT_SERVING before the port closed, and the stream ended (it did not
        # hold the shutdown for its grace period).
        assert ended.wait(10)
        watcher.join()
        assert seen[0] == "SERVING"
        assert "NOT_SERVING" in seen, seen
        events = [json.loads(ln) for ln in out.decode().splitlines() if ln.startswith("{")]
        stopped = [e for e in events if e.get("event") == "stopped"]
        assert stopped and stopped[0]["signal"] == "SIGTERM", events
        log = node_log(federation, "PA").read_text()
        assert "SIGTERM: stopping, health NOT_SERVING" in log
        assert "stopped cleanly in" in log

        # After a restart: retries of unanswered proposals (same request id) and every transfer
        # already answered settle, on both sides; nothing is in two places.
        local.start(["PA"])
        with RegistryClient(federation, "PA", timeout=10) as pa:
            for request_id in refused:
                t = pa.propose(source, target, quantity=1, request_id=request_id)
                settled_ids.append(t["transfer_id"])
            for transfer_id in settled_ids:
                done = pa.wait_settled(transfer_id, 60)
                assert (done["status"], done["settled"]) == ("completed", True), done
        for transfer_id in settled_ids:
            assert set(statuses(federation, transfer_id).values()) == {("completed", True)}
        assert audit(federation) == []


def _blackhole(port: int, stop: threading.Event, ready: threading.Event) -> None:
    """Accept connections on ``port`` and never answer: a peer that hangs mid-handshake."""
    held = []
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        server.settimeout(0.1)
        ready.set()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])
    for connection in held:
        connection.close()


def test_a_send_still_hanging_at_the_end_of_the_grace_is_cut_off_and_redriven(
    tmp_path: Path,
) -> None:
    grace = 1.0
    with running_federation(tmp_path, ["PA", "NY"], shutdown_grace=grace) as (federation, local):
        source = open_account(federation, "PA", "trader1")
        target = open_account(federation, "NY", "trader1")
        fund(federation, "PA", source, 10)
        # NY stops; something else takes its port and never answers.
        local.processes["NY"].send_signal(signal.SIGTERM)
        assert local.wait_exit("NY", 15) == 0
        stop_hole, ready = threading.Event(), threading.Event()
        port = int(federation.endpoint("NY").rpartition(":")[2])
        hole = threading.Thread(target=_blackhole, args=(port, stop_hole, ready))
        hole.start()
        try:
            assert ready.wait(5)
            with RegistryClient(federation, "PA", timeout=10) as pa:
                transfer = pa.propose(source, target, quantity=3)
            time.sleep(0.5)  # its first message is on its way to the silent port

            process = local.processes["PA"]
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=15)
            took = time.monotonic() - began
            local.wait_exit("PA", 1)
        finally:
            stop_hole.set()
            hole.join()
        assert process.returncode == 0
        assert took < grace + 2, f"stopping took {took:.1f} s with a {grace} s grace"
        stopped = json.loads(out.decode().strip().splitlines()[-1])
        assert stopped["event"] == "stopped" and stopped["unsent"] >= 1, stopped

        # The message cut off is still in PA's outbox: after both restart, the transfer settles.
        local.start(["NY", "PA"])
        with RegistryClient(federation, "PA", timeout=10) as pa:
            done = pa.wait_settled(transfer["transfer_id"], 60)
        assert (done["status"], done["settled"]) == ("completed", True), done
        assert set(statuses(federation, transfer["transfer_id"]).values()) == {("completed", True)}
        assert audit(federation) == []
