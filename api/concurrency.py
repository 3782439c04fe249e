"""Optimistic concurrency: ETag and If-Match on cooperations and projects.

A record's version is its workflow's event sequence (`state.seq`, the read model's `version`
column): it grows by one with every accepted change. `GET /cooperations/{id}` and
`GET /projects/{id}` answer with `ETag: W/"<version>"`, and so does every write, with the
version it produced.

A write on a cooperation or project may send `If-Match` with the ETag it last saw. The
version travels into the workflow with the action (`expected_seq`) and is checked there,
under the workflow's lock, so two writes based on the same version can never both apply:
the loser gets 412 Precondition Failed, "someone else changed this record since you loaded
it (version N, now M); reload and try again", and nothing changes.

`If-Match: *` matches any existing record (a missing one is a 404 as always). One entity
tag is accepted, weak (`W/"7"`) or strong (`"7"`); anything else — a list of tags, a tag
that is not a version of this API — is a 400 with a message saying what to send (400,
not 412: the request is malformed; it is not about the record having changed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Response

from api.errors import ApiError

_ENTITY_TAG = re.compile(r'(?:W/)?"([0-9]{1,18})"')

IF_MATCH_HELP = (
    'The ETag of the record as you last read it (`W/"7"`), or `*`. If the record has changed since, '
    "the answer is 412 and nothing is changed. A malformed value is a 400."
)


def etag(version: int) -> str:
    return f'W/"{version}"'


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match header names; None when there is no header or it is `*`."""
    if value is None:
        return None
    value = value.strip()
    if value == "*":
        return None
    match = _ENTITY_TAG.fullmatch(value)
    if match is None:
        raise ApiError(400, 'If-Match must be one ETag of this record as an earlier answer gave it, '
                            'like W/"7", or *')
    return int(match.group(1))


@dataclass(frozen=True)
class Precondition:
    """What a write route knows about versions: the If-Match version, and where the new ETag goes."""

    expected_seq: int | None  # None: no If-Match, or `*`
    response: Response

    def answered(self, version: int) -> None:
        self.response.headers["ETag"] = etag(version)


async def precondition(  # async: FastAPI would run a plain `def` dependency in its thread pool
    response: Response,
    if_match: Annotated[str | None, Header(description=IF_MATCH_HELP)] = None,
) -> Precondition:
    return Precondition(parse_if_match(if_match), response)


def tag(response: Response, version: int) -> None:
    """Set the ETag of a record being read."""
    response.headers["ETag"] = etag(version)


IfMatchDep = Annotated[Precondition, Depends(precondition)]
