# mypy: disable-error-code="no-untyped-call"
"""
Tests for L{tests.redisservers}: the Redis harness itself, against the real
servers it starts, through redis-py the way the metering code will use it
(Debian's redis-py 4.3.4 and the venv's 8.x alike).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis
import redis.cluster
import redis.sentinel
from twisted.trial.unittest import SynchronousTestCase

from tests import redisservers
from tests.redisservers import (
    MASTER_NAME,
    RedisCluster,
    RedisReplyError,
    RedisServer,
    RedisStartError,
    SentinelSetup,
    free_port,
    free_ports,
)

_COUNT_BOTH = """
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], ARGV[2])
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}
"""


class HarnessTests(SynchronousTestCase):
    """
    Ports, start-up failures and the missing binary, without a running
    server.
    """

    @pytest.fixture(autouse=True)
    def _fixtures(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.directory = tmp_path
        self.monkeypatch = monkeypatch

    def test_free_ports(self) -> None:
        """
        L{free_ports} gives distinct ports that can be bound right away, and
        so does L{free_port}.
        """
        ports = [*free_ports(5), free_port()]
        self.assertEqual(len(set(ports[:5])), 5)
        for port in ports:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))

    def test_missing_binary(self) -> None:
        """
        Without C{redis-server}, starting fails (it is not skipped) with a
        message that says how to install it.
        """
        self.monkeypatch.setenv("PATH", str(self.directory))
        self.monkeypatch.setattr(redisservers, "_SYSTEM_PATH", str(self.directory))
        server = RedisServer(self.directory / "redis")
        with self.assertRaises(RedisStartError) as raised:
            server.start()
        self.assertIn("redis-server is not installed", str(raised.exception))
        self.assertIn("bash ci/install-debian-deps", str(raised.exception))
        self.assertFalse(server.running())

    def test_bad_config_reports_log(self) -> None:
        """
        A server that exits at start fails L{RedisServer.start} with its exit
        status and the tail of its log.
        """
        server = RedisServer(self.directory / "redis", config=["no-such-directive 1"])
        with self.assertRaises(RedisStartError) as raised:
            server.start()
        message = str(raised.exception)
        self.assertIn("exited with status 1", message)
        self.assertIn("no-such-directive", message)
        self.assertIn(str(server.log_path), message)
        self.assertFalse(server.running())


class ServerTests(SynchronousTestCase):
    """
    One Redis server for each test.
    """

    @pytest.fixture(autouse=True)
    def _server(self, redis_server: RedisServer) -> None:
        self.server = redis_server

    def test_set_get(self) -> None:
        """
        The server answers SET and GET at its URL, and to the harness's own
        L{RedisServer.command}.
        """
        self.assertEqual(self.server.url, f"redis://127.0.0.1:{self.server.port}/0")
        client = redis.Redis.from_url(self.server.url, socket_timeout=5)
        self.assertTrue(client.set("greeting", "hello"))
        self.assertEqual(client.get("greeting"), b"hello")
        self.assertEqual(self.server.command("GET", "greeting"), "hello")
        self.assertEqual(self.server.client(decode_responses=True).dbsize(), 1)
        with self.assertRaises(RedisReplyError):
            self.server.command("NO-SUCH-COMMAND")

    def test_kill_and_start(self) -> None:
        """
        A killed server, started again, answers on the same port with neither
        its keys nor its scripts; a client made before the crash reconnects.
        """
        client = self.server.client()
        client.set("counter", 5)
        sha = client.script_load("return 1")
        port = self.server.port
        self.server.kill()
        self.assertFalse(self.server.running())
        with self.assertRaises(OSError):
            self.server.command("PING")
        self.server.start()
        self.assertEqual(self.server.port, port)
        self.assertEqual(client.get("counter"), None)
        self.assertEqual(client.script_exists(sha), [False])
        self.assertTrue(client.ping())

    def test_stop(self) -> None:
        """
        L{RedisServer.stop} ends the server cleanly, more than once; it can
        then start again.
        """
        self.server.stop()
        self.assertEqual(self.server.exit_status(), 0)
        self.assertFalse(self.server.running())
        self.server.stop()
        self.server.start()
        self.assertEqual(self.server.command("PING"), "PONG")


def _sentinel(setup: SentinelSetup) -> redis.sentinel.Sentinel:
    return redis.sentinel.Sentinel(
        [("127.0.0.1", port) for port in setup.sentinel_ports], socket_timeout=5
    )


class SentinelTests(SynchronousTestCase):
    """
    A master, a replica and three Sentinels, shared by these tests.
    """

    @pytest.fixture(autouse=True)
    def _setup(self, module_redis_sentinel: SentinelSetup) -> None:
        self.setup = module_redis_sentinel

    def test_url(self) -> None:
        """
        The URL names the three Sentinels, the master name and database 0.
        """
        ports = self.setup.sentinel_ports
        self.assertEqual(len(set(ports)), 3)
        self.assertEqual(
            self.setup.url,
            "redis+sentinel://"
            + ",".join(f"127.0.0.1:{port}" for port in ports)
            + "/mymaster/0",
        )

    def test_master_for(self) -> None:
        """
        Through the Sentinels, redis-py finds the master, writes and reads
        there, and reads the replicated key from the replica.
        """
        sentinel = _sentinel(self.setup)
        self.assertEqual(
            sentinel.discover_master(MASTER_NAME), ("127.0.0.1", self.setup.master.port)
        )
        self.assertEqual(
            sentinel.discover_slaves(MASTER_NAME),
            [("127.0.0.1", self.setup.replica.port)],
        )
        master = sentinel.master_for(MASTER_NAME, socket_timeout=5)
        self.assertTrue(master.set("written", "through sentinel"))
        self.assertEqual(master.get("written"), b"through sentinel")
        self.assertEqual(master.execute_command("WAIT", 1, 5000), 1)
        replica = sentinel.slave_for(MASTER_NAME, socket_timeout=5)
        self.assertEqual(replica.get("written"), b"through sentinel")
        self.assertEqual(
            self.setup.master.command("GET", "written"), "through sentinel"
        )


class SentinelFailoverTests(SynchronousTestCase):
    """
    A Sentinel set-up of its own, whose master is killed.
    """

    @pytest.fixture(autouse=True)
    def _setup(self, redis_sentinel: SentinelSetup) -> None:
        self.setup = redis_sentinel

    def test_failover(self) -> None:
        """
        When the master is killed, the Sentinels promote the replica, and a
        client from C{master_for} writes to it.
        """
        master = _sentinel(self.setup).master_for(MASTER_NAME, socket_timeout=5)
        master.set("before", "1")
        self.assertEqual(master.execute_command("WAIT", 1, 5000), 1)
        self.setup.master.kill()
        self.setup.wait_for_master(self.setup.replica)
        self.assertEqual(
            _sentinel(self.setup).discover_master(MASTER_NAME),
            ("127.0.0.1", self.setup.replica.port),
        )
        self.assertEqual(master.get("before"), b"1")
        self.assertTrue(master.set("after", "2"))
        self.assertEqual(self.setup.replica.command("GET", "after"), "2")


class ClusterTests(SynchronousTestCase):
    """
    A three-master cluster, shared by these tests.
    """

    @pytest.fixture(autouse=True)
    def _cluster(self, module_redis_cluster: RedisCluster) -> None:
        self.cluster = module_redis_cluster
        self.client = redis.cluster.RedisCluster(
            startup_nodes=[
                redis.cluster.ClusterNode("127.0.0.1", port)
                for port in self.cluster.ports
            ],
            socket_timeout=5,
        )

    def test_url(self) -> None:
        """
        The URL names the three nodes.
        """
        self.assertEqual(len(set(self.cluster.ports)), 3)
        self.assertEqual(
            self.cluster.url,
            "redis+cluster://"
            + ",".join(f"127.0.0.1:{port}" for port in self.cluster.ports)
            + "/",
        )
        self.assertEqual(
            sorted(node.port for node in self.client.get_primaries()),
            sorted(self.cluster.ports),
        )

    def test_keys_spread(self) -> None:
        """
        Keys in different slots are stored on different nodes: the one
        redis-py computes, which has them, while the others redirect.
        """
        keys = ["a", "b", "c"]
        owners = {}
        for key in keys:
            slot = self.client.keyslot(key)
            self.assertEqual(
                self.cluster.nodes[0].command("CLUSTER", "KEYSLOT", key), slot
            )
            owners[key] = self.client.get_node_from_key(key).port
            self.client.set(key, f"value of {key}")
        self.assertEqual(sorted(owners.values()), sorted(self.cluster.ports))
        for key, port in owners.items():
            for node in self.cluster.nodes:
                if node.port == port:
                    self.assertEqual(node.command("GET", key), f"value of {key}")
                else:
                    with self.assertRaises(RedisReplyError) as raised:
                        node.command("GET", key)
                    self.assertTrue(str(raised.exception).startswith("MOVED"))

    def test_eval_hash_tag(self) -> None:
        """
        A script touching two keys with the same hash tag runs on their node,
        by EVAL or as a registered script; keys in two slots are refused.
        """
        keys = ["{user-1}:requests", "{user-1}:bytes"]
        self.assertEqual(self.client.keyslot(keys[0]), self.client.keyslot(keys[1]))
        self.assertEqual(
            self.client.eval(_COUNT_BOTH, 2, *keys, 1, 100), [b"1", b"100"]
        )
        counted = self.client.register_script(_COUNT_BOTH)
        self.assertEqual(counted(keys=keys, args=[1, 50]), [b"2", b"150"])
        port = self.client.get_node_from_key(keys[0]).port
        node = next(node for node in self.cluster.nodes if node.port == port)
        self.assertEqual(node.command("MGET", *keys), ["2", "150"])
        self.assertNotEqual(self.client.keyslot("a"), self.client.keyslot("b"))
        with self.assertRaises(redis.exceptions.RedisClusterException):
            self.client.eval(_COUNT_BOTH, 2, "a", "b", 1, 1)

    def test_node_restart(self) -> None:
        """
        A node killed and started again keeps its slots but has lost its
        keys; the cluster is whole again once it reports C{cluster_state:ok}.
        """
        node = self.cluster.nodes[1]
        key = next(
            f"restart-{n}"
            for n in range(1000)
            if self.client.get_node_from_key(f"restart-{n}").port == node.port
        )
        self.client.set(key, "lost")
        node.kill()
        node.start()
        self.cluster.wait_until_ok()
        self.assertEqual(self.client.get(key), None)
        self.assertTrue(self.client.set(key, "kept"))
        self.assertEqual(node.command("GET", key), "kept")
