"""Pushing small test images to a registry through the distribution HTTP API: monolithic
blob uploads (POST, then PUT with the digest) and manifest PUTs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any
from urllib.parse import urljoin

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CREATED = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)


def upload_blob(base_url: str, repository: str, data: bytes, auth: Any) -> tuple[str, int]:
    """Monolithic blob upload: POST opens the upload, PUT with `digest=` completes it."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    opened = requests.post(f"{base_url}/v2/{repository}/blobs/uploads/", auth=auth, timeout=10)
    assert opened.status_code == 202, opened.text
    done = requests.put(
        urljoin(base_url, opened.headers["Location"]),
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        auth=auth,
        timeout=10,
    )
    assert done.status_code == 201, done.text
    return digest, len(data)


def put_manifest(
    base_url: str, repository: str, reference: str, manifest: dict, auth: Any
) -> tuple[str, int]:
    body = json.dumps(manifest).encode()
    response = requests.put(
        f"{base_url}/v2/{repository}/manifests/{reference}",
        data=body,
        headers={"Content-Type": manifest["mediaType"]},
        auth=auth,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    assert response.headers["Docker-Content-Digest"] == digest
    return digest, len(body)


def push_image(
    base_url: str,
    repository: str,
    tag: str | None,
    created: dt.datetime | None = CREATED,
    auth: Any = None,
    content: str | None = None,
    platform: tuple[str, str] = ("linux", "amd64"),
    labels: dict[str, Any] | None = None,
) -> str:
    """Push a one-layer OCI image (config + layer blob + manifest) and return its digest.

    The layer holds `content` (default `repository:tag`), so the same content and `created`
    give the same digest. `tag=None` pushes the manifest by digest only (index members).
    `labels` go where `docker build --label` and buildx put them: the config's
    `config.Labels`.
    """
    config = {
        "architecture": platform[1],
        "os": platform[0],
        "config": {"Labels": labels} if labels is not None else {},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    if created is not None:
        config["created"] = created.isoformat().replace("+00:00", "Z")
    config_digest, config_size = upload_blob(
        base_url, repository, json.dumps(config, sort_keys=True).encode(), auth
    )
    layer = (content or f"{repository}:{tag}:{'/'.join(platform)}").encode()
    layer_digest, layer_size = upload_blob(base_url, repository, layer, auth)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": layer_size,
            }
        ],
    }
    body_digest = "sha256:" + hashlib.sha256(json.dumps(manifest).encode()).hexdigest()
    return put_manifest(base_url, repository, tag or body_digest, manifest, auth)[0]


def push_index(
    base_url: str,
    repository: str,
    tag: str,
    platforms: tuple[tuple[str, str], ...] = (("linux", "arm64"), ("linux", "amd64")),
    created: dt.datetime | None = CREATED,
    auth: Any = None,
    labels: dict[str, Any] | None = None,
) -> str:
    """Push one image per platform (by digest) and an OCI image index naming them under
    `tag`; return the index's digest. `labels` go in every platform image's config."""
    entries = []
    for os_name, architecture in platforms:
        digest = push_image(
            base_url,
            repository,
            None,
            created,
            auth,
            platform=(os_name, architecture),
            labels=labels,
        )
        size = len(
            requests.get(
                f"{base_url}/v2/{repository}/manifests/{digest}",
                headers={"Accept": OCI_MANIFEST},
                auth=auth,
                timeout=10,
            ).content
        )
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"os": os_name, "architecture": architecture},
            }
        )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return put_manifest(base_url, repository, tag, index, auth)[0]
