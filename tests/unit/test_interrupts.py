"""Signals turned into exceptions, and blocks that hold them until they end."""

from __future__ import annotations

import signal
import threading

import pytest

from leadops.core.interrupts import Terminated, signals_held, sigterm_raises


def _signal_self(signum: int) -> None:
    """Send the signal to this thread, the main one. A signal sent to the process (os.kill)
    may be taken by another thread (pytest-xdist runs some) while the main thread holds it,
    and then reach the main thread only later, after the block under test has ended."""
    signal.pthread_kill(threading.get_ident(), signum)


pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="Python runs signal handlers in the main thread only",
)


def test_ctrl_c_inside_a_held_block_arrives_when_it_ends() -> None:
    finished = False
    with pytest.raises(KeyboardInterrupt), signals_held():
        _signal_self(signal.SIGINT)
        finished = True
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_raises_terminated_and_the_default_comes_back() -> None:
    with pytest.raises(Terminated), sigterm_raises():
        _signal_self(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_held_reaches_the_handler_in_place_after_the_block() -> None:
    with pytest.raises(Terminated), sigterm_raises():
        with signals_held():
            _signal_self(signal.SIGTERM)
        pytest.fail("SIGTERM was not delivered when the block ended")
