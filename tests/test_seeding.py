"""The three seed algorithms of landscape.seeding, each against a hand-written copy of its definition,
and their independence from how work is split (seeds come from identities, never positions)."""

import hashlib
import zlib

import numpy as np
import pytest

from landscape.seeding import check_seed, derive_seed, monte_carlo_seed, training_seed


@pytest.mark.parametrize("seed, keys", [(0, ()), (7, ("iterate", "eigen", 3, 5)), (2**40, ("id", "noise"))])
def test_derive_seed_is_blake2b_of_the_key_path(seed, keys):
    text = ":".join([str(seed), *map(str, keys)]).encode()
    expected = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1
    assert derive_seed(seed, *keys) == expected < 2**63


@pytest.mark.parametrize("seed, tag", [(0, "init"), (123456789012, "jitter/rank1of2"), (5, "batches")])
def test_training_seed_is_a_seed_sequence_over_the_seed_and_the_tags_crc(seed, tag):
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32, zlib.crc32(tag.encode())]).generate_state(
        2, dtype=np.uint32
    )
    assert training_seed(seed, tag) == ((int(state[1]) << 32) | int(state[0])) & (2**63 - 1)


def test_monte_carlo_seed_is_31_bits_of_a_seed_sequence():
    assert (
        monte_carlo_seed(0, 3, 2, 7)
        == int(np.random.SeedSequence([0, 3, 2, 7]).generate_state(1)[0]) & 0x7FFFFFFF
    )
    assert len({monte_carlo_seed(0, i, 7) for i in range(1000)}) == 1000


def test_the_algorithms_are_distinct_and_keys_are_ordered():
    assert derive_seed(0, "init") != training_seed(0, "init")
    assert derive_seed(0, 3, 17) != derive_seed(0, 17, 3)
    assert training_seed(0, "init") != training_seed(0, "batches")


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_a_bad_seed_is_one_line_naming_it(bad):
    with pytest.raises(ValueError, match=r"seed=.*expected an integer >= 0"):
        check_seed(bad)
    with pytest.raises(ValueError, match="expected an integer >= 0"):
        derive_seed(bad, "x")
