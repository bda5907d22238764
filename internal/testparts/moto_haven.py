"""Haven's plug-in for moto_server.

The disaster-recovery tests replicate disks to EBS snapshots through the EBS
direct APIs, fail over to EC2 volumes made from those snapshots and fail back
from EC2 snapshots of the volumes. Moto 5 simulates EC2 and the EBS direct APIs
but lacks what this needs; this script adds it to moto's own classes, then runs
moto's server:

    python moto_haven.py -H 127.0.0.1 -p PORT

The test harness (moto.go) starts the shared moto server this way. What is
added, behaving as documented for AWS:

- EBS blocks of 512 KiB; block indexes range over VolumeSize GiB.
- StartSnapshot: ParentSnapshotId (the new snapshot starts with the parent's
  blocks) and ClientToken (a repeated request returns the same snapshot).
- PutSnapshotBlock validates the snapshot's state, the block index, the data
  length and the SHA-256 checksum, and stores the bytes as they are.
- CompleteSnapshot honours x-amz-ChangedBlocksCount: a count that differs from
  the number of blocks put leaves the snapshot in the error state.
- ListSnapshotBlocks and ListChangedBlocks: sorted, paginated (MaxResults,
  NextToken, StartingBlockIndex); ListChangedBlocks without a first snapshot
  lists all blocks of the second; GetSnapshotBlock checks the block token.
- EC2 volumes hold data: CreateVolume from a snapshot copies its blocks, EC2
  CreateSnapshot of a volume makes a snapshot readable by the EBS direct APIs,
  CopySnapshot copies the blocks, DeleteSnapshot removes them.
- A test-only route, outside any AWS API, for what a guest does to its disk:
  PUT and GET /_haven/volumes/<volume-id>/blocks/<index>, the body being the
  block's bytes. A GET of a block never written answers 404 with the header
  X-Haven-Error: NoSuchBlock (the block reads as zeros), of a volume that does
  not exist 404 with NoSuchVolume.

One deliberate leniency: MaxResults is honoured down to 1 (AWS requires at
least 100), so that tests can page through a handful of blocks.

Everything goes through moto's backends, so /moto-api/reset clears it too.
"""

import base64
import binascii
import hashlib
import json
import sys
import threading
from typing import Any
from urllib.parse import parse_qs

import moto.server
from flask import Flask, Response, request
from moto.core.exceptions import JsonRESTError
from moto.core.utils import unix_time
from moto.ebs import models as ebs_models
from moto.ebs import responses as ebs_responses
from moto.ec2.models import ec2_backends
from moto.ec2.models import elastic_block_store as ec2_ebs
from moto.ec2.utils import random_snapshot_id
from moto.moto_server import werkzeug_app

BLOCK_SIZE = 512 * 1024
BLOCKS_PER_GIB = (1 << 30) // BLOCK_SIZE
# The most blocks in a page when MaxResults is not given: AWS's maximum.
DEFAULT_MAX_RESULTS = 10000
# The volume ID that AWS reports for snapshots made with StartSnapshot.
DIRECT_API_VOLUME_ID = "vol-ffffffff"
# How long block tokens stay valid, as reported in ExpiryTime.
TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600
TEST_ROUTE_PREFIX = "/_haven/"
JSON_HEADERS = {"Content-Type": "application/json"}

# Werkzeug serves each request in a thread of its own; one lock keeps the
# snapshot and volume data consistent. Moto's own code does not need it.
_lock = threading.RLock()


# ---------------------------------------------------------------- errors


class EBSError(JsonRESTError):
    """An EBS direct API error, with the Reason member AWS sends."""

    def __init__(self, status: int, error_type: str, message: str, reason: str):
        super().__init__(error_type, message)
        self.code = status
        self.description = json.dumps(
            {"__type": error_type, "Message": message, "Reason": reason}
        )


def validation_error(message: str, reason: str = "INVALID_PARAMETER_VALUE") -> EBSError:
    return EBSError(400, "ValidationException", message, reason)


def snapshot_not_found(snapshot_id: str) -> EBSError:
    return EBSError(
        404,
        "ResourceNotFoundException",
        f"The snapshot '{snapshot_id}' does not exist.",
        "SNAPSHOT_NOT_FOUND",
    )


def parse_int(name: str, value: Any, minimum: int | None = None) -> int | None:
    """Parses an optional integer parameter, or raises a ValidationException."""
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise validation_error(f"{name} must be an integer, not {value!r}.")
    if minimum is not None and n < minimum:
        raise validation_error(f"{name} must be at least {minimum}, not {n}.")
    return n


# ---------------------------------------------------------------- data model


def new_block(data: bytes) -> ebs_models.Block:
    checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return ebs_models.Block(data, checksum, "SHA256", len(data))  # type: ignore[arg-type]


def block_count(volume_size_gib: Any) -> int:
    return int(volume_size_gib) * BLOCKS_PER_GIB


_orig_snapshot_init = ebs_models.EBSSnapshot.__init__
_orig_snapshot_to_json = ebs_models.EBSSnapshot.to_json


def _snapshot_init(self: ebs_models.EBSSnapshot, account_id: str, snapshot: Any) -> None:
    _orig_snapshot_init(self, account_id, snapshot)
    self.block_size = BLOCK_SIZE
    self.volume_size = int(self.volume_size)
    # Block index -> Block. Moto keys blocks by the index as a string.
    self.blocks: dict[int, ebs_models.Block] = {}  # type: ignore[assignment]
    # Indexes of the blocks put to this snapshot (not inherited).
    self.put_indexes: set[int] = set()
    self.parent_snapshot_id: str | None = None
    self.ec2_snapshot = snapshot


def _snapshot_to_json(self: ebs_models.EBSSnapshot) -> dict[str, Any]:
    out = _orig_snapshot_to_json(self)
    if self.parent_snapshot_id:
        out["ParentSnapshotId"] = self.parent_snapshot_id
    return out


def _set_status(snapshot: ebs_models.EBSSnapshot, status: str) -> None:
    # EC2 DescribeSnapshots shows the same state as the EBS direct APIs.
    snapshot.status = status
    snapshot.ec2_snapshot.status = status


_orig_volume_init = ec2_ebs.Volume.__init__


def _volume_init(self: ec2_ebs.Volume, *args: Any, **kwargs: Any) -> None:
    _orig_volume_init(self, *args, **kwargs)
    # Block index -> the block's BLOCK_SIZE bytes; absent blocks read as zeros.
    self.data_blocks: dict[int, bytes] = {}


def ebs_backend_of(ec2_backend: Any) -> ebs_models.EBSBackend:
    return ebs_models.ebs_backends[ec2_backend.account_id][ec2_backend.region_name]


def find_snapshot(backend: ebs_models.EBSBackend, snapshot_id: str) -> ebs_models.EBSSnapshot | None:
    """The EBS direct API view of a snapshot, None if there is no such snapshot.

    Snapshots that EC2 made without this plug-in knowing (moto's built-in AMI
    snapshots) have no blocks.
    """
    snapshot = backend.snapshots.get(snapshot_id)
    if snapshot is None:
        ec2_snapshot = backend.ec2_backend.snapshots.get(snapshot_id)
        if ec2_snapshot is not None:
            snapshot = ebs_models.EBSSnapshot(backend.account_id, ec2_snapshot)
            snapshot.status = ec2_snapshot.status
            backend.snapshots[snapshot_id] = snapshot
    return snapshot


def get_snapshot(backend: ebs_models.EBSBackend, snapshot_id: str) -> ebs_models.EBSSnapshot:
    snapshot = find_snapshot(backend, snapshot_id)
    if snapshot is None:
        raise snapshot_not_found(snapshot_id)
    return snapshot


def check_block_index(snapshot: ebs_models.EBSSnapshot, value: Any) -> int:
    index = parse_int("BlockIndex", value)
    limit = block_count(snapshot.volume_size)
    if index is None or not 0 <= index < limit:
        raise validation_error(
            f"Block index {value} is out of range: a {snapshot.volume_size} GiB "
            f"snapshot has blocks 0 to {limit - 1}.",
            "INVALID_BLOCK",
        )
    return index


# ---------------------------------------------------------------- pagination


def encode_page_token(listing: str, next_index: int) -> str:
    raw = json.dumps({"listing": listing, "next": next_index}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_page_token(listing: str, token: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["listing"] == listing and isinstance(data["next"], int):
            return data["next"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise validation_error(
        f"The page token {token!r} does not belong to this listing.",
        "INVALID_PAGE_TOKEN",
    )


def paginate(
    listing: str,
    indexes: list[int],
    max_results: Any,
    next_token: str | None,
    starting_block_index: Any,
) -> tuple[list[int], str | None]:
    """One page of the sorted block indexes, and the token of the next page."""
    limit = parse_int("MaxResults", max_results, minimum=1) or DEFAULT_MAX_RESULTS
    start = parse_int("StartingBlockIndex", starting_block_index, minimum=0) or 0
    if next_token:
        start = max(start, decode_page_token(listing, next_token))
    selected = [i for i in sorted(indexes) if i >= start]
    page = selected[:limit]
    token = None
    if len(selected) > limit:
        token = encode_page_token(listing, page[-1] + 1)
    return page, token


# ---------------------------------------------------------------- EBS backend


def start_snapshot(
    self: ebs_models.EBSBackend,
    volume_size: Any,
    tags: list[dict[str, str]] | None,
    description: str,
    parent_snapshot_id: str | None = None,
    client_token: str | None = None,
) -> ebs_models.EBSSnapshot:
    with _lock:
        tokens: dict[str, str] = self.__dict__.setdefault("client_tokens", {})
        if client_token and client_token in tokens:
            earlier = self.snapshots.get(tokens[client_token])
            if earlier is not None:
                return earlier
        size = parse_int("VolumeSize", volume_size, minimum=1)
        if size is None:
            raise validation_error("VolumeSize is required.", "INVALID_VOLUME_SIZE")
        parent = None
        if parent_snapshot_id:
            parent = find_snapshot(self, parent_snapshot_id)
            if parent is None:
                raise validation_error(
                    f"The parent snapshot '{parent_snapshot_id}' does not exist.",
                    "INVALID_SNAPSHOT_ID",
                )
            if parent.status != "completed":
                raise validation_error(
                    f"The parent snapshot '{parent_snapshot_id}' is {parent.status}, not completed.",
                    "INVALID_DEPENDENCY_REQUEST",
                )
            if size < parent.volume_size:
                raise validation_error(
                    f"VolumeSize {size} GiB is smaller than the parent snapshot's {parent.volume_size} GiB.",
                    "INVALID_VOLUME_SIZE",
                )
        ec2 = self.ec2_backend
        # Like AWS, a snapshot started here belongs to no volume that exists;
        # the volume object only carries its size.
        volume = ec2_ebs.Volume(
            ec2,
            volume_id=DIRECT_API_VOLUME_ID,
            size=size,
            zone=ec2.get_zone_by_name(f"{self.region_name}a"),
        )
        ec2_snapshot = ec2_ebs.Snapshot(ec2, random_snapshot_id(), volume, description)
        if tags:
            ec2_snapshot.add_tags({tag["Key"]: tag["Value"] for tag in tags})
        ec2.snapshots[ec2_snapshot.id] = ec2_snapshot
        snapshot = ebs_models.EBSSnapshot(self.account_id, ec2_snapshot)
        _set_status(snapshot, "pending")
        if parent is not None:
            snapshot.blocks = dict(parent.blocks)
            snapshot.parent_snapshot_id = parent.snapshot_id
        self.snapshots[snapshot.snapshot_id] = snapshot
        if client_token:
            tokens[client_token] = snapshot.snapshot_id
        return snapshot


def put_snapshot_block(
    self: ebs_models.EBSBackend,
    snapshot_id: str,
    block_index: str,
    block_data: bytes,
    checksum: str | None,
    checksum_algorithm: str | None,
    data_length: str | None,
) -> tuple[str, str]:
    with _lock:
        snapshot = get_snapshot(self, snapshot_id)
        if snapshot.status != "pending":
            raise validation_error(
                f"The snapshot '{snapshot_id}' is {snapshot.status}; blocks can only be put to a pending snapshot.",
                "INVALID_SNAPSHOT_ID",
            )
        index = check_block_index(snapshot, block_index)
        data = bytes(block_data or b"")
        length = parse_int("DataLength", data_length)
        if length is None:
            raise validation_error("The x-amz-Data-Length header is required.")
        if length != len(data):
            raise validation_error(
                f"DataLength {length} does not match the {len(data)} bytes of block data."
            )
        if length != BLOCK_SIZE:
            raise validation_error(
                f"DataLength {length} is not the block size: blocks are {BLOCK_SIZE} bytes.",
                "INVALID_BLOCK",
            )
        if checksum_algorithm != "SHA256":
            raise validation_error(
                f"ChecksumAlgorithm {checksum_algorithm!r} is not supported: it must be SHA256."
            )
        block = new_block(data)
        if checksum != block.checksum:
            raise validation_error(
                f"Checksum {checksum!r} does not match the block data, whose base64 SHA-256 is {block.checksum}.",
                "INVALID_CHECKSUM",
            )
        snapshot.blocks[index] = block
        snapshot.put_indexes.add(index)
        return block.checksum, block.checksum_algorithm


def complete_snapshot(
    self: ebs_models.EBSBackend, snapshot_id: str, changed_blocks_count: Any = None
) -> dict[str, str]:
    with _lock:
        snapshot = get_snapshot(self, snapshot_id)
        if snapshot.status != "pending":
            raise validation_error(
                f"The snapshot '{snapshot_id}' is {snapshot.status}; only a pending snapshot can be completed.",
                "INVALID_SNAPSHOT_ID",
            )
        count = parse_int("ChangedBlocksCount", changed_blocks_count, minimum=0)
        if count is not None and count != len(snapshot.put_indexes):
            _set_status(snapshot, "error")
        else:
            _set_status(snapshot, "completed")
        return {"Status": snapshot.status}


def get_snapshot_block(
    self: ebs_models.EBSBackend, snapshot_id: str, block_index: str, block_token: str | None = None
) -> ebs_models.Block:
    with _lock:
        snapshot = get_snapshot(self, snapshot_id)
        index = check_block_index(snapshot, block_index)
        block = snapshot.blocks.get(index)
        if block is None or not block_token or block_token != block.block_token:
            raise validation_error(
                f"The block token {block_token!r} is not valid for block {index} of snapshot '{snapshot_id}'.",
                "INVALID_BLOCK_TOKEN",
            )
        return block


def list_snapshot_blocks(
    self: ebs_models.EBSBackend,
    snapshot_id: str,
    max_results: Any = None,
    next_token: str | None = None,
    starting_block_index: Any = None,
) -> tuple[list[dict[str, Any]], str | None, ebs_models.EBSSnapshot]:
    with _lock:
        snapshot = get_snapshot(self, snapshot_id)
        page, token = paginate(
            f"blocks {snapshot_id}", list(snapshot.blocks), max_results, next_token, starting_block_index
        )
        blocks = [{"BlockIndex": i, "BlockToken": snapshot.blocks[i].block_token} for i in page]
        return blocks, token, snapshot


def list_changed_blocks(
    self: ebs_models.EBSBackend,
    first_snapshot_id: str | None,
    second_snapshot_id: str,
    max_results: Any = None,
    next_token: str | None = None,
    starting_block_index: Any = None,
) -> tuple[list[dict[str, Any]], str | None, ebs_models.EBSSnapshot]:
    with _lock:
        second = get_snapshot(self, second_snapshot_id)
        first_blocks: dict[int, ebs_models.Block] = {}
        if first_snapshot_id:
            first_blocks = get_snapshot(self, first_snapshot_id).blocks
        changed: dict[int, dict[str, Any]] = {}
        for index in set(first_blocks) | set(second.blocks):
            a, b = first_blocks.get(index), second.blocks.get(index)
            if a is not None and b is not None and a.block_data == b.block_data:
                continue
            entry: dict[str, Any] = {"BlockIndex": index}
            if a is not None:
                entry["FirstBlockToken"] = a.block_token
            if b is not None:
                entry["SecondBlockToken"] = b.block_token
            changed[index] = entry
        page, token = paginate(
            f"changed {first_snapshot_id} {second_snapshot_id}",
            list(changed),
            max_results,
            next_token,
            starting_block_index,
        )
        return [changed[i] for i in page], token, second


# ---------------------------------------------------------------- EBS responses


def _path_parts(self: ebs_responses.EBSResponse) -> list[str]:
    return self.parsed_url.path.split("/")


def _query(self: ebs_responses.EBSResponse, name: str) -> str | None:
    values = parse_qs(self.parsed_url.query, keep_blank_values=True).get(name)
    return values[0] if values else None


def _listing(blocks_key: str, blocks: list[dict[str, Any]], token: str | None, snapshot: Any) -> Any:
    out: dict[str, Any] = {
        blocks_key: blocks,
        "ExpiryTime": unix_time() + TOKEN_LIFETIME_SECONDS,
        "VolumeSize": snapshot.volume_size,
        "BlockSize": snapshot.block_size,
    }
    if token:
        out["NextToken"] = token
    return 200, dict(JSON_HEADERS), json.dumps(out)


def r_start_snapshot(self: ebs_responses.EBSResponse) -> Any:
    params = json.loads(self.body or b"{}")
    snapshot = self.ebs_backend.start_snapshot(
        volume_size=params.get("VolumeSize"),
        tags=params.get("Tags"),
        description=params.get("Description"),
        parent_snapshot_id=params.get("ParentSnapshotId"),
        client_token=params.get("ClientToken"),
    )
    return 200, dict(JSON_HEADERS), json.dumps(snapshot.to_json())


def r_complete_snapshot(self: ebs_responses.EBSResponse) -> Any:
    status = self.ebs_backend.complete_snapshot(
        snapshot_id=_path_parts(self)[-1],
        changed_blocks_count=self.headers.get("x-amz-ChangedBlocksCount"),
    )
    return 202, {**JSON_HEADERS, "status": 202}, json.dumps(status)


def r_put_snapshot_block(self: ebs_responses.EBSResponse) -> Any:
    parts = _path_parts(self)
    checksum, algorithm = self.ebs_backend.put_snapshot_block(
        snapshot_id=parts[-3],
        block_index=parts[-1],
        block_data=self.raw_body,
        checksum=self.headers.get("x-amz-Checksum"),
        checksum_algorithm=self.headers.get("x-amz-Checksum-Algorithm"),
        data_length=self.headers.get("x-amz-Data-Length"),
    )
    headers = {
        **JSON_HEADERS,
        "status": 201,
        "x-amz-Checksum": checksum,
        "x-amz-Checksum-Algorithm": algorithm,
    }
    return 201, headers, "{}"


def r_get_snapshot_block(self: ebs_responses.EBSResponse) -> Any:
    parts = _path_parts(self)
    block = self.ebs_backend.get_snapshot_block(
        snapshot_id=parts[-3],
        block_index=parts[-1],
        block_token=_query(self, "blockToken"),
    )
    headers = {
        "Content-Type": "application/octet-stream",
        "x-amz-Checksum": block.checksum,
        "x-amz-Checksum-Algorithm": block.checksum_algorithm,
        "x-amz-Data-Length": str(block.data_length),
    }
    return 200, headers, block.block_data


def r_list_snapshot_blocks(self: ebs_responses.EBSResponse) -> Any:
    blocks, token, snapshot = self.ebs_backend.list_snapshot_blocks(
        snapshot_id=_path_parts(self)[-2],
        max_results=_query(self, "maxResults"),
        next_token=_query(self, "pageToken"),
        starting_block_index=_query(self, "startingBlockIndex"),
    )
    return _listing("Blocks", blocks, token, snapshot)


def r_list_changed_blocks(self: ebs_responses.EBSResponse) -> Any:
    blocks, token, snapshot = self.ebs_backend.list_changed_blocks(
        first_snapshot_id=_query(self, "firstSnapshotId"),
        second_snapshot_id=_path_parts(self)[-2],
        max_results=_query(self, "maxResults"),
        next_token=_query(self, "pageToken"),
        starting_block_index=_query(self, "startingBlockIndex"),
    )
    return _listing("ChangedBlocks", blocks, token, snapshot)


# ---------------------------------------------------------------- EC2 backend


_orig_create_volume = ec2_ebs.EBSBackend.create_volume
_orig_create_snapshot = ec2_ebs.EBSBackend.create_snapshot
_orig_copy_snapshot = ec2_ebs.EBSBackend.copy_snapshot
_orig_delete_snapshot = ec2_ebs.EBSBackend.delete_snapshot


def create_volume(self: Any, *args: Any, **kwargs: Any) -> ec2_ebs.Volume:
    with _lock:
        volume = _orig_create_volume(self, *args, **kwargs)
        if volume.snapshot_id:
            snapshot = find_snapshot(ebs_backend_of(self), volume.snapshot_id)
            if snapshot is not None:
                volume.data_blocks = {i: b.block_data for i, b in snapshot.blocks.items()}
        return volume


def create_snapshot(self: Any, volume_id: str, *args: Any, **kwargs: Any) -> ec2_ebs.Snapshot:
    with _lock:
        ec2_snapshot = _orig_create_snapshot(self, volume_id, *args, **kwargs)
        # The snapshot holds the volume's blocks as they are now.
        snapshot = ebs_models.EBSSnapshot(self.account_id, ec2_snapshot)
        snapshot.blocks = {i: new_block(d) for i, d in ec2_snapshot.volume.data_blocks.items()}
        _set_status(snapshot, "completed")
        ebs_backend_of(self).snapshots[snapshot.snapshot_id] = snapshot
        return ec2_snapshot


def copy_snapshot(self: Any, source_snapshot_id: str, source_region: str, *args: Any, **kwargs: Any) -> ec2_ebs.Snapshot:
    with _lock:
        copy = _orig_copy_snapshot(self, source_snapshot_id, source_region, *args, **kwargs)
        source_backend = ebs_models.ebs_backends[self.account_id][source_region]
        source = find_snapshot(source_backend, source_snapshot_id)
        snapshot = ebs_models.EBSSnapshot(self.account_id, copy)
        snapshot.volume_size = source.volume_size if source else snapshot.volume_size
        snapshot.blocks = dict(source.blocks) if source else {}
        _set_status(snapshot, "completed")
        ebs_backend_of(self).snapshots[snapshot.snapshot_id] = snapshot
        return copy


def delete_snapshot(self: Any, snapshot_id: str) -> ec2_ebs.Snapshot:
    with _lock:
        deleted = _orig_delete_snapshot(self, snapshot_id)
        ebs_backend_of(self).snapshots.pop(snapshot_id, None)
        return deleted


# ---------------------------------------------------------------- test route


def find_volume(volume_id: str) -> ec2_ebs.Volume | None:
    for _, _, backend in ec2_backends.iter_backends():
        volume = backend.volumes.get(volume_id)
        if volume is not None:
            return volume
    return None


def _route_error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"Code": code, "Message": message})
    return Response(
        body, status=status, content_type="application/json", headers={"X-Haven-Error": code}
    )


def create_test_app() -> Flask:
    """The Flask app behind /_haven/: what a guest does to its disks."""
    app = Flask("haven")

    @app.route("/_haven/volumes/<volume_id>/blocks/<index>", methods=["GET", "PUT"])
    def volume_block(volume_id: str, index: str) -> Response:
        with _lock:
            volume = find_volume(volume_id)
            if volume is None:
                return _route_error(404, "NoSuchVolume", f"The volume '{volume_id}' does not exist.")
            limit = block_count(volume.size)
            try:
                i = int(index)
            except ValueError:
                i = -1
            if not 0 <= i < limit:
                return _route_error(
                    400, "InvalidBlockIndex",
                    f"Block index {index} is out of range: the volume has blocks 0 to {limit - 1}.",
                )
            if request.method == "PUT":
                data = request.get_data()
                if len(data) != BLOCK_SIZE:
                    return _route_error(
                        400, "InvalidBlockLength",
                        f"The block has {len(data)} bytes; blocks are {BLOCK_SIZE} bytes.",
                    )
                volume.data_blocks[i] = bytes(data)
                return Response(status=204)
            data = volume.data_blocks.get(i)
            if data is None:
                return _route_error(
                    404, "NoSuchBlock", f"Block {i} of volume '{volume_id}' was never written."
                )
            return Response(data, status=200, content_type="application/octet-stream")

    return app


class HavenDispatcher(werkzeug_app.DomainDispatcherApplication):
    """Moto's dispatcher, with /_haven/ routed to the test app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.test_app = create_test_app()

    def get_application(self, environ: dict[str, Any]) -> Any:
        if environ.get("PATH_INFO", "").startswith(TEST_ROUTE_PREFIX):
            return self.test_app
        return super().get_application(environ)


# ---------------------------------------------------------------- install


def install() -> None:
    ebs_models.EBSSnapshot.__init__ = _snapshot_init  # type: ignore[method-assign]
    ebs_models.EBSSnapshot.to_json = _snapshot_to_json  # type: ignore[method-assign]
    ebs_models.EBSBackend.start_snapshot = start_snapshot  # type: ignore[method-assign]
    ebs_models.EBSBackend.put_snapshot_block = put_snapshot_block  # type: ignore[method-assign]
    ebs_models.EBSBackend.complete_snapshot = complete_snapshot  # type: ignore[method-assign]
    ebs_models.EBSBackend.get_snapshot_block = get_snapshot_block  # type: ignore[method-assign]
    ebs_models.EBSBackend.list_snapshot_blocks = list_snapshot_blocks  # type: ignore[method-assign,assignment]
    ebs_models.EBSBackend.list_changed_blocks = list_changed_blocks  # type: ignore[method-assign,assignment]

    ebs_responses.EBSResponse.start_snapshot = r_start_snapshot  # type: ignore[method-assign]
    ebs_responses.EBSResponse.complete_snapshot = r_complete_snapshot  # type: ignore[method-assign]
    ebs_responses.EBSResponse.put_snapshot_block = r_put_snapshot_block  # type: ignore[method-assign]
    ebs_responses.EBSResponse.get_snapshot_block = r_get_snapshot_block  # type: ignore[method-assign]
    ebs_responses.EBSResponse.list_snapshot_blocks = r_list_snapshot_blocks  # type: ignore[method-assign]
    ebs_responses.EBSResponse.list_changed_blocks = r_list_changed_blocks  # type: ignore[method-assign]

    ec2_ebs.Volume.__init__ = _volume_init  # type: ignore[method-assign]
    ec2_ebs.EBSBackend.create_volume = create_volume  # type: ignore[method-assign]
    ec2_ebs.EBSBackend.create_snapshot = create_snapshot  # type: ignore[method-assign]
    ec2_ebs.EBSBackend.copy_snapshot = copy_snapshot  # type: ignore[method-assign]
    ec2_ebs.EBSBackend.delete_snapshot = delete_snapshot  # type: ignore[method-assign]

    moto.server.DomainDispatcherApplication = HavenDispatcher  # type: ignore[misc]


if __name__ == "__main__":
    install()
    moto.server.main(sys.argv[1:])
