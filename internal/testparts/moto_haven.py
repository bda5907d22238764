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
- RegisterImage keeps BlockDeviceMappings (each EBS mapping's snapshot must
  exist, InvalidSnapshot.NotFound; its VolumeSize defaults to the snapshot's
  and cannot be smaller, InvalidBlockDeviceMapping; a device is mapped once),
  RootDeviceName (one of the mapped devices, else InvalidParameterValue),
  Architecture, VirtualizationType, BootMode, EnaSupport (with AWS's
  defaults i386 and paravirtual) and TagSpecifications of resource type
  image (any other type is refused); a name already in use by an image of
  the account is refused (InvalidAMIName.Duplicate). DescribeImages shows
  all of it, the mappings with SnapshotId, VolumeSize, VolumeType,
  DeleteOnTermination and Encrypted. Such an image has no snapshot of its
  own (moto makes one for its images); DeleteSnapshot refuses a snapshot
  that it maps until it is deregistered (InvalidSnapshot.InUse).
- RunInstances from such an image creates one volume per EBS mapping, from
  its snapshot (so holding the snapshot's blocks), of its size and type,
  attached at its device with its DeleteOnTermination; the root device is
  the image's. A launch template's mappings, then RunInstances' own,
  override the image's device by device and member by member (NoDevice
  removes a device; a mapping of a device the image maps needs no snapshot
  or size); a volume smaller than its snapshot is refused
  (InvalidBlockDeviceMapping). Volume tags apply to all the volumes, and
  TerminateInstances deletes those marked DeleteOnTermination (both moto's
  own). DescribeVolumes shows Attachments[].DeleteOnTermination.
- RunInstances honours ClientToken per account and region: a repeated
  request returns the original reservation and instances, terminated ones
  too, instead of launching; the same token with other parameters is
  refused (IdempotentParameterMismatch).
- TerminateInstances frees the instances' private addresses in their subnets,
  as AWS does once an instance is terminated (moto keeps them taken until
  the Python object is collected, so a second launch at the same address
  fails).
- Throttling on request: PUT /_haven/throttle/PutSnapshotBlock/<snapshot>/<index>
  with a count in the body answers that many puts of that block with AWS's
  ThrottlingException before letting one through.
- A test-only route, outside any AWS API, for what a guest does to its disk:
  PUT and GET /_haven/volumes/<volume-id>/blocks/<index>, the body being the
  block's bytes. A GET of a block never written answers 404 with the header
  X-Haven-Error: NoSuchBlock (the block reads as zeros), of a volume that does
  not exist 404 with NoSuchVolume.

One deliberate leniency: MaxResults is honoured down to 1 (AWS requires at
least 100), so that tests can page through a handful of blocks.

Left as moto has them: images that moto makes itself (its built-in ones,
CreateImage, CopyImage, RegisterImage without BlockDeviceMappings) show its
made-up 15 GiB root mapping, which RunInstances does not use (their instances
get moto's 8 GiB root volume, or RunInstances' own mappings only).

Everything goes through moto's backends, so /moto-api/reset clears it too.
"""

import base64
import binascii
import copy
import hashlib
import json
import sys
import threading
from typing import Any
from urllib.parse import parse_qs

import moto.server
from flask import Flask, Response, request
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.core.utils import unix_time
from moto.ebs import models as ebs_models
from moto.ebs import responses as ebs_responses
from moto.ec2.exceptions import (
    EC2ClientError,
    InvalidRequest,
    InvalidSnapshotInUse,
    InvalidTaggableResourceType,
    MissingParameterError,
)
from moto.ec2.models import amis as ec2_amis
from moto.ec2.models import ec2_backends
from moto.ec2.models import elastic_block_store as ec2_ebs
from moto.ec2.models import instances as ec2_instances
from moto.ec2.responses import amis as ec2_amis_responses
from moto.ec2.responses import instances as ec2_instances_responses
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


# (snapshot id, block index) -> puts still to throttle.
_throttled_puts: dict[tuple[str, int], int] = {}


def r_put_snapshot_block(self: ebs_responses.EBSResponse) -> Any:
    parts = _path_parts(self)
    with _lock:
        key = (parts[-3], int(parts[-1]) if parts[-1].isdigit() else -1)
        if _throttled_puts.get(key, 0) > 0:
            _throttled_puts[key] -= 1
            raise EBSError(400, "ThrottlingException", "Rate exceeded.", "ACCOUNT_THROTTLED")
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
        image_id = image_snapshot_user(self, snapshot_id)
        if image_id is not None:
            raise InvalidSnapshotInUse(snapshot_id, image_id)
        deleted = _orig_delete_snapshot(self, snapshot_id)
        ebs_backend_of(self).snapshots.pop(snapshot_id, None)
        return deleted


# ---------------------------------------------------------------- images


# What RegisterImage accepts, as documented.
IMAGE_ARCHITECTURES = ("i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac")
VIRTUALIZATION_TYPES = ("hvm", "paravirtual")
BOOT_MODES = ("legacy-bios", "uefi", "uefi-preferred")
# Defaults that AWS documents for RegisterImage of an EBS-backed image.
DEFAULT_IMAGE_ARCHITECTURE = "i386"
DEFAULT_VIRTUALIZATION_TYPE = "paravirtual"
DEFAULT_ROOT_DEVICE_NAME = "/dev/sda1"
DEFAULT_VOLUME_TYPE = "gp2"
# The members of an EBS block device mapping that RunInstances passes on.
EBS_MAPPING_KEYS = (
    "SnapshotId",
    "VolumeSize",
    "DeleteOnTermination",
    "VolumeType",
    "Iops",
    "Throughput",
    "Encrypted",
    "KmsKeyId",
)


def ec2_error(code: str, message: str) -> EC2ClientError:
    return EC2ClientError(code, message)


def invalid_mapping(message: str) -> EC2ClientError:
    return ec2_error("InvalidBlockDeviceMapping", message)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise ec2_error(
            "InvalidParameterValue",
            f"Value ({value}) for parameter {name} is invalid. Valid values: {', '.join(choices)}.",
        )


def snapshot_too_small(size: Any, snapshot: Any) -> EC2ClientError | None:
    """The error for a volume of size GiB made from snapshot, if it is smaller."""
    if size is not None and int(size) < int(snapshot.volume.size):
        return invalid_mapping(
            f"Volume of size {int(size)}GB is smaller than snapshot '{snapshot.id}', "
            f"expect size >= {int(snapshot.volume.size)}GB"
        )
    return None


def image_mappings(backend: Any, root_device_name: str, requested: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An image's block device mappings as DescribeImages shows them, from
    those given to RegisterImage: an EBS mapping's snapshot must exist, its
    size defaults to the snapshot's and cannot be smaller."""
    mappings: list[dict[str, Any]] = []
    devices: set[str] = set()
    for m in requested:
        device = m.get("DeviceName")
        if not device:
            raise MissingParameterError("BlockDeviceMapping.DeviceName")
        if device in devices:
            raise invalid_mapping(f"The device '{device}' is used in more than one block-device mapping")
        devices.add(device)
        if "NoDevice" in m:
            mappings.append({"DeviceName": device, "NoDevice": ""})
            continue
        if m.get("VirtualName") and not m.get("Ebs"):
            mappings.append({"DeviceName": device, "VirtualName": m["VirtualName"]})
            continue
        ebs = m.get("Ebs")
        if not ebs:
            raise MissingParameterError("ebs")
        snapshot_id, size = ebs.get("SnapshotId"), ebs.get("VolumeSize")
        encrypted = bool(ebs.get("Encrypted", False))
        if snapshot_id:
            snapshot = backend.snapshots.get(snapshot_id)
            if snapshot is None:
                raise ec2_error("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")
            too_small = snapshot_too_small(size, snapshot)
            if too_small is not None:
                raise too_small
            size = int(snapshot.volume.size) if size is None else int(size)
            encrypted = encrypted or bool(snapshot.encrypted)
        elif size is None:
            raise invalid_mapping(f"The block device mapping for '{device}' needs a snapshot or a volume size.")
        out: dict[str, Any] = {
            # As in AWS, the root volume goes with the instance by default,
            # the others stay.
            "DeleteOnTermination": bool(ebs.get("DeleteOnTermination", device == root_device_name)),
            "VolumeSize": int(size),
            "VolumeType": ebs.get("VolumeType") or DEFAULT_VOLUME_TYPE,
            "Encrypted": encrypted,
        }
        if snapshot_id:
            out["SnapshotId"] = snapshot_id
        for key in ("Iops", "Throughput", "KmsKeyId"):
            if ebs.get(key) is not None:
                out[key] = ebs[key]
        mappings.append({"DeviceName": device, "Ebs": out})
    return mappings


def image_tags(tag_specifications: list[dict[str, Any]] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for spec in tag_specifications or []:
        if spec.get("ResourceType") != "image":
            raise InvalidTaggableResourceType(spec.get("ResourceType"))
        for tag in spec.get("Tags") or []:
            tags[tag["Key"]] = tag.get("Value", "")
    return tags


_orig_register_image = ec2_amis.AmiBackend.register_image
_orig_ami_block_device_mappings = ec2_amis.Ami.block_device_mappings


def register_image(
    self: Any,
    name: str | None = None,
    description: str | None = None,
    root_device_name: str | None = None,
    block_device_mappings: list[dict[str, Any]] | None = None,
    architecture: str | None = None,
    virtualization_type: str | None = None,
    boot_mode: str | None = None,
    ena_support: bool | None = None,
    tag_specifications: list[dict[str, Any]] | None = None,
) -> ec2_amis.Ami:
    with _lock:
        # Everything is checked before anything is made.
        check_choice("Architecture", architecture, IMAGE_ARCHITECTURES)
        check_choice("VirtualizationType", virtualization_type, VIRTUALIZATION_TYPES)
        check_choice("BootMode", boot_mode, BOOT_MODES)
        tags = image_tags(tag_specifications)
        if name:
            for other in self.amis.values():
                if other.name == name and other.owner_id == self.account_id:
                    raise ec2_error("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {other.id}")
        root = root_device_name or DEFAULT_ROOT_DEVICE_NAME
        mappings = None
        if block_device_mappings:
            mappings = image_mappings(self, root, block_device_mappings)
            devices = [m["DeviceName"] for m in mappings]
            if root not in devices:
                raise ec2_error(
                    "InvalidParameterValue",
                    f"Value ({root}) for parameter rootDeviceName is invalid: "
                    f"it is none of the block device mappings' devices ({', '.join(devices)}).",
                )
        ami = _orig_register_image(self, name, description)
        if mappings is not None:
            # Moto makes every image a snapshot of a volume of its own; one
            # registered over snapshots has none (DeleteSnapshot then
            # refuses the snapshots it maps).
            self.snapshots.pop(ami.ebs_snapshot.id, None)
            ebs_backend_of(self).snapshots.pop(ami.ebs_snapshot.id, None)
            ami.haven_mappings = mappings
            ami.root_device_type = "ebs"
        ami.root_device_name = root
        ami.architecture = architecture or DEFAULT_IMAGE_ARCHITECTURE
        ami.virtualization_type = virtualization_type or DEFAULT_VIRTUALIZATION_TYPE
        ami.boot_mode = boot_mode
        ami.ena_support = ena_support
        ami.add_tags(tags)
        return ami


def _ami_block_device_mappings(self: ec2_amis.Ami) -> list[dict[str, Any]]:
    mappings = getattr(self, "haven_mappings", None)
    if mappings is None:
        return _orig_ami_block_device_mappings.fget(self)  # type: ignore[attr-defined]
    return copy.deepcopy(mappings)


def image_snapshot_user(backend: Any, snapshot_id: str) -> str | None:
    """The image registered over the snapshot, if any."""
    for ami in backend.amis.values():
        for m in getattr(ami, "haven_mappings", None) or []:
            if m.get("Ebs", {}).get("SnapshotId") == snapshot_id:
                return ami.id
    return None


def r_register_image(self: Any) -> ActionResult:
    name = self._get_param("Name")
    description = self._get_param("Description", "")
    image = {
        "root_device_name": self._get_param("RootDeviceName"),
        "block_device_mappings": self._get_param("BlockDeviceMappings", []),
        "architecture": self._get_param("Architecture"),
        "virtualization_type": self._get_param("VirtualizationType"),
        "boot_mode": self._get_param("BootMode"),
        "ena_support": self._get_param("EnaSupport"),
        "tag_specifications": self._get_param("TagSpecifications", []),
    }
    self.error_on_dryrun()
    ami = self.ec2_backend.register_image(name, description, **image)
    return ActionResult({"ImageId": ami.id})


# ---------------------------------------------------------------- instances


def r_parse_block_device_mapping(self: Any) -> list[dict[str, Any]]:
    """RunInstances' BlockDeviceMappings as moto's parser makes them, except
    that a member not given stays None (moto makes DeleteOnTermination and
    Encrypted False), so that it does not override the image's, and that a
    mapping needs no snapshot or size when the image maps its device:
    run_instances checks that once the image's mappings are merged in."""
    mappings = []
    for m in self._get_param("BlockDeviceMappings", []):
        if "NoDevice" in m:
            if m["NoDevice"] != "":
                raise InvalidRequest()
        elif "Ebs" not in m and not m.get("VirtualName"):
            raise MissingParameterError("ebs")
        ebs = m.get("Ebs") or {}
        mappings.append(
            {
                "DeviceName": m.get("DeviceName"),
                "VirtualName": m.get("VirtualName"),
                "NoDevice": m.get("NoDevice"),
                "Ebs": {key: ebs.get(key) for key in EBS_MAPPING_KEYS},
            }
        )
    return mappings


def merge_mappings(backend: Any, layers: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The EBS volumes to create for an instance: the image's mappings, each
    later layer overriding them device by device, member by member (NoDevice
    removes a device), in moto's format for run_instances."""
    devices: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for m in layer or []:
            device = m.get("DeviceName")
            if m.get("NoDevice") is not None or (m.get("VirtualName") and not m.get("Ebs")):
                # No device, or an instance store volume: no EBS volume.
                devices.pop(device, None)
                continue
            ebs = {k: v for k, v in (m.get("Ebs") or {}).items() if v is not None}
            devices[device] = {**devices.get(device, {}), **ebs}
    out = []
    for device, ebs in devices.items():
        snapshot_id, size = ebs.get("SnapshotId"), ebs.get("VolumeSize")
        if not snapshot_id and size is None:
            raise MissingParameterError("size or snapshotId")
        if snapshot_id:
            too_small = snapshot_too_small(size, backend.get_snapshot(snapshot_id))
            if too_small is not None:
                raise too_small
        out.append(
            {
                "DeviceName": device,
                "VirtualName": None,
                "NoDevice": None,
                "Ebs": {
                    "SnapshotId": snapshot_id,
                    "VolumeSize": None if size is None else int(size),
                    "VolumeType": ebs.get("VolumeType"),
                    "DeleteOnTermination": bool(ebs.get("DeleteOnTermination", False)),
                    "Encrypted": bool(ebs.get("Encrypted", False)),
                    "KmsKeyId": ebs.get("KmsKeyId"),
                    "Iops": ebs.get("Iops"),
                },
            }
        )
    return out


def _attachment_delete_on_termination(self: ec2_ebs.VolumeAttachment) -> bool:
    """DescribeVolumes' Attachments[].DeleteOnTermination: what the instance
    holds for the device (moto shows nothing)."""
    device = self.instance.block_device_mapping.get(self.device)
    return bool(device is not None and device.volume_id == self.volume.id and device.delete_on_termination)


_orig_run_instances = ec2_instances.InstanceBackend.run_instances


def run_instances(
    self: Any,
    image_id: str,
    count: int,
    user_data: Any,
    security_group_names: list[str],
    **kwargs: Any,
) -> Any:
    with _lock:
        template = None
        if kwargs.get("launch_template"):
            template = self._get_template_from_args(kwargs["launch_template"])
        ami = self.amis.get(image_id or (template.image_id if template else None) or "")
        image = getattr(ami, "haven_mappings", None)
        requested = kwargs.get("block_device_mappings")
        if image is not None or requested is not None:
            layers = [image or []]
            if image is not None and template is not None:
                layers.append(template.data.get("BlockDeviceMappings") or [])
            layers.append(requested or [])
            kwargs["block_device_mappings"] = merge_mappings(self, layers)
        return _orig_run_instances(self, image_id, count, user_data, security_group_names, **kwargs)


_orig_terminate = ec2_instances.Instance.terminate


def terminate_instance(self: Any) -> Any:
    previous = _orig_terminate(self)
    with _lock:
        try:
            subnet = self.ec2_backend.get_subnet(self.subnet_id) if self.subnet_id else None
        except Exception:  # the subnet is gone: nothing to free
            subnet = None
        if subnet is not None:
            for ip in list(getattr(self, "_private_ips", ())):
                if subnet._subnet_ips.get(ip) is self:
                    subnet.del_subnet_ip(ip)
    return previous


_orig_r_run_instances = ec2_instances_responses.InstanceResponse.run_instances


def request_fingerprint(self: Any) -> str:
    """What a repeated request must match: all its parameters but the token."""
    params = {k: v for k, v in (self.params or {}).items() if k not in ("ClientToken", "DryRun")}
    return json.dumps(params, sort_keys=True, default=str)


def r_run_instances(self: Any) -> ActionResult:
    token = self._get_param("ClientToken")
    if not token:
        return _orig_r_run_instances(self)
    fingerprint = request_fingerprint(self)
    with _lock:
        # Client token -> (reservation ID, request fingerprint), per account
        # and region like the backend.
        tokens: dict[str, tuple[str, str]] = self.ec2_backend.__dict__.setdefault("run_client_tokens", {})
        earlier = tokens.get(token)
        if earlier is not None:
            reservation_id, earlier_fingerprint = earlier
            if fingerprint != earlier_fingerprint:
                raise ec2_error(
                    "IdempotentParameterMismatch",
                    f"The client token {token} was used with other parameters "
                    f"for reservation {reservation_id}.",
                )
            reservation = self.ec2_backend.reservations.get(reservation_id)
            if reservation is not None:
                self.error_on_dryrun()
                # The instances as they are now, terminated ones too.
                return ActionResult(reservation)
        result = _orig_r_run_instances(self)
        tokens[token] = (result.result.id, fingerprint)
        return result


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

    @app.route("/_haven/throttle/PutSnapshotBlock/<snapshot_id>/<index>", methods=["PUT"])
    def throttle_put(snapshot_id: str, index: str) -> Response:
        with _lock:
            _throttled_puts[(snapshot_id, int(index))] = int(request.get_data() or b"0")
        return Response(status=204)

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

    ec2_amis.AmiBackend.register_image = register_image  # type: ignore[method-assign]
    ec2_amis.Ami.block_device_mappings = property(_ami_block_device_mappings)  # type: ignore[method-assign,assignment]
    ec2_amis_responses.AmisResponse.register_image = r_register_image  # type: ignore[method-assign]
    ec2_ebs.VolumeAttachment.delete_on_termination = property(_attachment_delete_on_termination)  # type: ignore[attr-defined]
    ec2_instances.InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]
    ec2_instances.Instance.terminate = terminate_instance  # type: ignore[method-assign]
    ec2_instances_responses.InstanceResponse.run_instances = r_run_instances  # type: ignore[method-assign]
    ec2_instances_responses.InstanceResponse._parse_block_device_mapping = r_parse_block_device_mapping  # type: ignore[method-assign]

    moto.server.DomainDispatcherApplication = HavenDispatcher  # type: ignore[misc]


if __name__ == "__main__":
    install()
    moto.server.main(sys.argv[1:])
