from hypothesis import given
from hypothesis import strategies as st

from spoonprint.delivery.retry import RetryPolicy


def test_doubles_from_initial_up_to_the_cap() -> None:
    policy = RetryPolicy(initial=1.0, maximum=30.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


@given(st.integers(min_value=1, max_value=10_000), st.floats(min_value=0, max_value=1))
def test_jitter_stays_within_its_band(failures: int, draw: float) -> None:
    policy = RetryPolicy(initial=0.5, maximum=20.0, jitter=0.1)
    base = min(0.5 * 2 ** min(failures - 1, 64), 20.0)
    assert 0.9 * base <= policy.delay(failures, draw) <= 1.1 * base
