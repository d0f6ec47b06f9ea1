"""Image references as `docker pull` reads them, and the digest a tag resolves to: the
warehouse's `registry_images` first, then the registry (a lookup the caller passes in)."""

from __future__ import annotations

import pytest

from tests.deploy.known import SEEN, know
from timbel_dagster.assets.security.images import store_images
from timbel_dagster.records.image_ref import ImageRef, parse_image
from timbel_dagster.resources.registry_records import OCI_MANIFEST, Image
from timbel_dagster.security.image_ref import resolve_digest, resolve_many
from timbel_dagster.warehouse.engine import get_engine

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("reg.example.com/payments/payments-api:1.4.2",
         ImageRef("reg.example.com", "payments/payments-api", "1.4.2", None)),
        ("reg.example.com:5000/payments/payments-api:1.4.2",
         ImageRef("reg.example.com:5000", "payments/payments-api", "1.4.2", None)),
        ("127.0.0.1:5000/a/b/c:x", ImageRef("127.0.0.1:5000", "a/b/c", "x", None)),
        ("localhost/app", ImageRef("localhost", "app", "latest", None)),  # no tag: latest
        ("reg.example.com/payments/api",
         ImageRef("reg.example.com", "payments/api", "latest", None)),
        (f"reg.example.com/payments/api@{D1}",
         ImageRef("reg.example.com", "payments/api", None, D1)),
        (f"reg.example.com/payments/api:1.0@{D1}",
         ImageRef("reg.example.com", "payments/api", "1.0", D1)),  # the digest decides
        ("Reg.Example.COM/payments/api:1", ImageRef("reg.example.com", "payments/api", "1", None)),
        # Docker Hub: short names, `library/`, and its other host names.
        ("nginx", ImageRef("docker.io", "library/nginx", "latest", None)),
        ("nginx:1.27", ImageRef("docker.io", "library/nginx", "1.27", None)),
        ("payments/api:2", ImageRef("docker.io", "payments/api", "2", None)),
        ("docker.io/nginx:1", ImageRef("docker.io", "library/nginx", "1", None)),
        ("index.docker.io/library/nginx:1", ImageRef("docker.io", "library/nginx", "1", None)),
        ("registry-1.docker.io/bitnami/redis:7",
         ImageRef("docker.io", "bitnami/redis", "7", None)),
        # normalize.go splitDockerDomain: the first component is a host only with a '.' or
        # a ':', as 'localhost', or with an upper-case letter; otherwise it is a Hub path.
        ("foo_bar/baz:1", ImageRef("docker.io", "foo_bar/baz", "1", None)),
        ("myregistry:5000/app", ImageRef("myregistry:5000", "app", "latest", None)),
        ("Myregistry/app:1", ImageRef("myregistry", "app", "1", None)),
        ("[::1]:5000/app:1", ImageRef("[::1]:5000", "app", "1", None)),
        # go-digest's registered algorithms: sha256, sha384, sha512.
        (f"reg.example.com/app@sha384:{'3' * 96}",
         ImageRef("reg.example.com", "app", None, f"sha384:{'3' * 96}")),
    ],
)  # fmt: skip
def test_references(reference: str, expected: ImageRef) -> None:
    assert parse_image(reference) == expected


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("not an image!", "'not an image!' is not an image reference ('not an image!' is not a "
                          "repository name (lower-case path like team/app))"),
        ("app:", "'app:' is not an image reference ('' is not a tag)"),
        ("app@sha256:xyz", "'app@sha256:xyz' is not an image reference ('sha256:xyz' is not a "
                           "sha256:, sha384: or sha512: digest)"),
        # go-digest: the hex is lower case and exactly as long as the algorithm's sum.
        (f"app@sha256:{'A' * 64}", "is not a sha256:, sha384: or sha512: digest"),
        (f"app@sha256:{'a' * 63}", "is not a sha256:, sha384: or sha512: digest"),
        # regexp.go domainComponent: a host name label never starts or ends with '-'.
        ("-reg.example.com/app:1", "('-reg.example.com' is not a registry host)"),
        ("reg-.example.com/app:1", "('reg-.example.com' is not a registry host)"),
        # normalize.go ParseNormalizedNamed: a bare 64-hex string is an image ID.
        ("a" * 64, "(a 64-hex string is an image ID, not a repository name)"),
        ("reg.example.com/App:1", "('App' is not a repository name"),
        ("reg_example.com/app:1", "('reg_example.com' is not a registry host)"),
    ],
)  # fmt: skip
def test_bad_references(reference: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_image(reference)
    assert message in str(error.value)


def test_a_tag_resolves_through_the_warehouse_first(warehouse_url: str) -> None:
    know(warehouse_url, "payments-api", {"reg.example.com/payments/api:1.0": D1})
    asked: list[tuple[str, str, str]] = []

    def registry(host: str, repository: str, reference: str) -> str | None:
        asked.append((host, repository, reference))
        return D2 if reference == "2.0" else None

    with get_engine(warehouse_url).connect() as connection:
        known = resolve_digest(connection, "reg.example.com/payments/api:1.0", registry)
        pushed = resolve_digest(connection, "reg.example.com/payments/api:2.0", registry)
        unknown = resolve_digest(connection, "reg.example.com/payments/api:3.0", registry)
        pinned = resolve_digest(connection, f"reg.example.com/payments/api:9@{D2}", registry)
        offline = resolve_digest(connection, "reg.example.com/payments/api:2.0")
        many = resolve_many(
            connection,
            ["reg.example.com/payments/api:1.0", "reg.example.com/payments/api:2.0", "bad ref"],
            registry,
        )
    assert (known.digest, known.via) == (D1, "registry_images")
    assert known.note() == (
        f"reg.example.com/payments/api:1.0 is reg.example.com/payments/api@{D1} "
        "(from registry_images)"
    )
    assert (pushed.digest, pushed.via) == (D2, "registry")
    assert (unknown.digest, unknown.via) == (None, None)
    assert unknown.note() == (
        "reg.example.com/payments/api:3.0 is in neither registry_images nor the registry: "
        "matched by the name its scans recorded"
    )
    assert (pinned.digest, pinned.via, pinned.note()) == (D2, "reference", None)
    assert offline.digest is None
    assert offline.note() == (
        "reg.example.com/payments/api:2.0 is not in registry_images and no registry is "
        "configured to ask (HARBOR_REGISTRY): matched by the name its scans recorded"
    )
    assert {k: v.digest if v else v for k, v in many.items()} == {
        "reg.example.com/payments/api:1.0": D1,
        "reg.example.com/payments/api:2.0": D2,
        "bad ref": None,
    }
    # The registry is asked only about tags the warehouse does not know.
    assert asked == [
        ("reg.example.com", "payments/api", "2.0"),
        ("reg.example.com", "payments/api", "3.0"),
        ("reg.example.com", "payments/api", "2.0"),
    ]


@pytest.mark.parametrize("listed_as", ["Reg.Example.com", "reg.example.com:443"])
def test_registry_images_match_whatever_way_harbor_registry_names_the_host(
    warehouse_url: str, listed_as: str
) -> None:
    # registry_images keeps the host as HARBOR_REGISTRY spells it (case, a default port);
    # host names compare without case and https's port is the default (as the registry
    # lookup itself compares them), so the warehouse answers and the registry is not asked.
    with get_engine(warehouse_url).begin() as connection:  # as ingestion stores them
        store_images(
            connection, [Image(listed_as, "payments/api", "1.0", D1, OCI_MANIFEST)], "test", SEEN
        )
    asked: list[tuple[str, str, str]] = []

    def registry(host: str, repository: str, reference: str) -> str | None:
        asked.append((host, repository, reference))
        return None

    with get_engine(warehouse_url).connect() as connection:
        one = resolve_digest(connection, "reg.example.com/payments/api:1.0", registry)
        many = resolve_many(connection, ["reg.example.com/payments/api:1.0"], registry)
    assert (one.digest, one.via) == (D1, "registry_images")
    assert many["reg.example.com/payments/api:1.0"].digest == D1
    assert asked == []
