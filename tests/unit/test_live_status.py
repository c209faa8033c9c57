import io

from kperf_core.live_status import LiveStatus


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_are_rate_limited_and_stamped():
    out, clock = io.StringIO(), Clock()
    status = LiveStatus(out, live=False, plain_interval=10, clock=clock)
    status.update("a")
    clock.now += 5
    status.update("b")  # too soon: dropped
    clock.now += 6
    status.update("c")
    status.update("d", force=True)
    status.close()
    assert out.getvalue() == "[    0.0s] a\n[   11.0s] c\n[   11.0s] d\n"


def test_live_line_is_redrawn_in_place_and_ended_once():
    out, clock = io.StringIO(), Clock()
    status = LiveStatus(out, live=True, clock=clock)
    status.update("a longer line")
    clock.now += 1
    status.update("short")
    status.message("done")
    clock.now += 1
    status.update("x")
    status.close()
    status.close()
    assert out.getvalue() == (
        "\ra longer line" + "\rshort" + " " * 8 + "\r" + " " * 5 + "\r[    1.0s] done\n" + "\rx\n"
    )
