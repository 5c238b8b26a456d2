"""Request ids: 32 hex digits, distinct within a process, across instances, and in a forked child."""

from __future__ import annotations

import os

import pytest

from rankstack.serving.request_ids import RequestIds, new_request_id


def test_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = RequestIds()
    drawn = [ids.next() for _ in range(10_000)] + [new_request_id() for _ in range(10)]
    assert len(set(drawn)) == len(drawn)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in drawn)


def test_two_generators_draw_different_prefixes() -> None:
    assert RequestIds().next()[:16] != RequestIds().next()[:16]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_its_own_prefix() -> None:
    ids = RequestIds()
    parent = ids.next()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, ids.next().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert child[:16] != parent[:16] and len(child) == 32
