"""The real servers that scripts/test starts (scripts/servers) are there.

Each test talks to its server with the driver the project uses and checks
that the server listens on 127.0.0.1 only: as the server reports it where it
can, and by finding nothing on the same port at another loopback address
(127.0.0.2, ::1), where a server bound to every address would answer.
"""

from __future__ import annotations

import socket
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from kombu import Connection, Exchange, Queue

from conftest import server_url


def assert_only_on_127_0_0_1(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    for host in ("127.0.0.2", "::1"):
        try:
            with socket.create_connection((host, port), timeout=2):
                pass
        except OSError:
            continue  # refused (or no IPv6 at all): nothing listens there
        pytest.fail(f"something answers on {host}:{port}: not bound to 127.0.0.1 only")


def test_postgres_is_a_real_postgresql_15(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, connect_timeout=10, autocommit=True) as conn:
        version = conn.execute("select version()").fetchone()
        assert version is not None and version[0].startswith("PostgreSQL 15."), version
        assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("select current_database()").fetchone() == ("rollsafe_test",)
        conn.execute("create temporary table probe (id int primary key, name text)")
        conn.execute("insert into probe values (%s, %s)", (1, "lamp"))
        assert conn.execute("select name from probe where id = 1").fetchone() == ("lamp",)
    port = urlsplit(postgres_url).port
    assert port is not None
    assert_only_on_127_0_0_1(port)


def test_redis_is_a_real_redis_7(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=10)
    try:
        assert client.ping() is True
        assert str(client.info("server")["redis_version"]).startswith("7.")
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        key = f"rollsafe-test:{uuid.uuid4().hex}"
        assert client.set(key, b"lamp", ex=60) is True
        assert client.get(key) == b"lamp"
        assert client.delete(key) == 1
    finally:
        client.close()
    port = urlsplit(redis_url).port
    assert port is not None
    assert_only_on_127_0_0_1(port)


def test_rabbitmq_is_real_and_carries_a_message(rabbit_url: str) -> None:
    url = urlsplit(rabbit_url)
    assert url.scheme == "rabbit" and url.port is not None
    name = f"rollsafe-test-{uuid.uuid4().hex}"
    queue = Queue(
        name,
        Exchange(name, type="direct", durable=False, auto_delete=True),
        routing_key=name,
        durable=False,
        auto_delete=True,
    )
    with Connection(
        hostname=url.hostname,
        port=url.port,
        userid=url.username,
        password=url.password,
        virtual_host="/",
        transport="pyamqp",
        connect_timeout=10,
    ) as conn:
        conn.ensure_connection(max_retries=3)
        server = conn.connection.server_properties
        assert server["product"] == "RabbitMQ"
        assert str(server["version"]).startswith("3."), server["version"]
        assert conn.connection.sock.getpeername()[0] == "127.0.0.1"

        simple = conn.SimpleQueue(queue)
        try:
            simple.put({"item": "lamp", "quantity": 2}, serializer="json")
            message = simple.get(block=True, timeout=10)
            message.ack()
            assert message.payload == {"item": "lamp", "quantity": 2}
        finally:
            simple.close()
    assert_only_on_127_0_0_1(url.port)


def test_a_missing_server_url_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    variable = "ROLLSAFE_TEST_NO_SUCH_SERVER_URL"
    monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        server_url(variable)
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        server_url(variable)
    for value in ("true", "1", "True"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match="CI must run"):
            server_url(variable)
    monkeypatch.setenv(variable, "redis://127.0.0.1:1/0")
    assert server_url(variable) == "redis://127.0.0.1:1/0"
