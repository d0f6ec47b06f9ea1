"""Three prod clusters, each a stateful loopback Kubernetes API with shop-api deployed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.kubernetes_server import FakeKubernetes

OLD = "registry.example.com/shop/api:1.4.1"
CLUSTERS = ("prod-a", "prod-b", "prod-c")
TOKEN_ENV = "DEPLOY_TEST_TOKEN"


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FakeKubernetes]]:
    monkeypatch.setenv(TOKEN_ENV, "t")
    servers = {}
    for name in CLUSTERS:
        fake = FakeKubernetes(token="t", auto_rollout=True, failing_images=())
        fake.start()
        fake.put_deployment("shop", "shop-api", replicas=2, image=OLD)
        servers[name] = fake
    yield servers
    for fake in servers.values():
        fake.stop()
