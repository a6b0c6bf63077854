"""A small etcd v3 client over etcd's JSON gateway (`/v3/kv/...` on the client URL).

The lab's kube-apiserver stores objects in the lab's real etcd. The real server speaks gRPC;
the gateway is the same KV API encoded as JSON (keys and values base64), served by every etcd
3.4+ on its client port with the same TLS client-certificate rules, so no gRPC stack is needed.
Revisions are what the API server turns into resourceVersion: an update is a transaction that
compares the key's mod_revision, so concurrent writers get a conflict, never a lost update.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit


class EtcdError(Exception):
    """etcd could not be reached or refused the request."""


@dataclass
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def prefix_end(prefix: str) -> str:
    """The range_end that selects every key starting with `prefix` (last byte + 1)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return bytes(raw).decode()


class EtcdClient:
    """One HTTPS connection per thread to the first reachable server of --etcd-servers."""

    def __init__(self, servers: list[str], ca: str | None, cert: str | None, key: str | None,
                 timeout: float = 5.0):
        self.servers = [s for s in servers if s]
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
        self.context.check_hostname = False
        if cert and key:
            self.context.load_cert_chain(cert, key)
        self.local = threading.local()

    def _connection(self, server: str) -> http.client.HTTPConnection:
        parts = urlsplit(server)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.hostname, parts.port or 2379,
                                               timeout=self.timeout, context=self.context)
        return http.client.HTTPConnection(parts.hostname, parts.port or 2379, timeout=self.timeout)

    def call(self, path: str, body: dict) -> dict:
        """POST one gateway request; the connection is reused, re-opened once when stale."""
        payload = json.dumps(body)
        last: Exception | None = None
        for attempt in range(2 * len(self.servers)):
            server = self.servers[attempt // 2]
            conn = getattr(self.local, "conn", None)
            if conn is None or getattr(self.local, "server", None) != server:
                conn = self.local.conn = self._connection(server)
                self.local.server = server
            try:
                conn.request("POST", path, payload, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as err:
                last = err
                conn.close()
                self.local.conn = None
                continue
            answer = json.loads(data or b"{}")
            if response.status != 200:
                raise EtcdError(answer.get("error") or answer.get("message") or data.decode())
            return answer
        raise EtcdError(f"etcd unreachable ({', '.join(self.servers)}): {last}")

    # -- KV ------------------------------------------------------------------------------------
    def get(self, key: str) -> KeyValue | None:
        kvs = self.call("/v3/kv/range", {"key": _b64(key)}).get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def list(self, prefix: str, keys_only: bool = False) -> list[KeyValue]:
        body = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        if keys_only:
            body["keys_only"] = True
        return [_kv(kv) for kv in self.call("/v3/kv/range", body).get("kvs") or []]

    def create(self, key: str, value: bytes) -> int | None:
        """Put only when the key does not exist: its new revision, or None when it exists."""
        return self._txn({"key": _b64(key), "target": "CREATE", "result": "EQUAL",
                          "create_revision": "0"}, key, value)

    def update(self, key: str, value: bytes, mod_revision: int) -> int | None:
        """Put only when the key is still at `mod_revision`: the new revision, or None."""
        return self._txn({"key": _b64(key), "target": "MOD", "result": "EQUAL",
                          "mod_revision": str(mod_revision)}, key, value)

    def _txn(self, compare: dict, key: str, value: bytes) -> int | None:
        answer = self.call("/v3/kv/txn", {
            "compare": [compare],
            "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}]})
        if not answer.get("succeeded"):
            return None
        return int(answer["header"]["revision"])

    def delete(self, key: str, mod_revision: int | None = None) -> bool:
        """Delete (only at `mod_revision` when given); True when a key was deleted."""
        compare = [] if mod_revision is None else [
            {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}]
        answer = self.call("/v3/kv/txn", {
            "compare": compare, "success": [{"request_delete_range": {"key": _b64(key)}}]})
        responses = answer.get("responses") or [{}]
        deleted = responses[0].get("response_delete_range", {}).get("deleted", "0")
        return bool(answer.get("succeeded")) and int(deleted) > 0

    def revision(self) -> int:
        return int(self.call("/v3/kv/range", {"key": _b64("/"), "limit": 1})["header"]["revision"])


def _kv(raw: dict) -> KeyValue:
    return KeyValue(base64.b64decode(raw["key"]).decode(), base64.b64decode(raw.get("value", "")),
                    int(raw.get("mod_revision", 0)), int(raw.get("create_revision", 0)))
