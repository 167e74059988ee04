from fittrack.core.domain.sequences import WINDOW, DeviceCursor


def durable(*sequences: int) -> DeviceCursor:
    cursor = DeviceCursor()
    for sequence in sequences:
        cursor = cursor.with_durable(sequence)
    return cursor


def test_a_fresh_device_holds_nothing():
    assert not DeviceCursor().holds(1)
    assert DeviceCursor().missing() == []


def test_a_sequence_is_held_once_durable_and_its_neighbours_are_not():
    cursor = durable(1, 2, 4)
    assert [cursor.holds(n) for n in range(1, 6)] == [True, True, False, True, False]
    assert cursor.missing() == [3]


def test_a_late_batch_fills_its_gap():
    assert durable(1, 2, 4, 3).missing() == []
    assert durable(4, 3, 2, 1) == durable(1, 2, 3, 4)


def test_sequence_zero_means_unnumbered_and_is_never_held():
    assert not durable(0, 1).holds(0)


def test_a_sequence_further_back_than_the_window_is_treated_as_new():
    cursor = durable(*range(1, WINDOW + 10))
    assert cursor.holds(cursor.highest - WINDOW)
    assert not cursor.holds(cursor.highest - WINDOW - 1)
    assert cursor.missing() == []


def test_a_jump_forward_beyond_the_window_forgets_what_was_before():
    cursor = durable(1, 2, 1000)
    assert cursor.holds(1000) and not cursor.holds(2)
    assert cursor.missing() == list(range(1000 - WINDOW, 1000))


def test_merging_two_servers_cursors_holds_what_either_held():
    ours, theirs = durable(1, 2, 5), durable(3, 7)
    merged = ours.merged(theirs)
    assert [n for n in range(1, 9) if merged.holds(n)] == [1, 2, 3, 5, 7]
    assert merged == theirs.merged(ours)


def test_the_window_fits_a_signed_64_bit_column():
    cursor = durable(*range(1, 200))
    assert 0 <= cursor.held < 2**63
