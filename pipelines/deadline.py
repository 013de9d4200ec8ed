"""A CPU-time limit for one call, e.g. an extractor on one pathological page.

A curation task must not hang for an hour on one document. ``CpuDeadline(s).call(fn)``
runs ``fn()`` and interrupts it once the calling thread has spent ``s`` seconds of
CPU time, returning ``(True, None)`` instead of its result.

How: in the main thread of a process (a local run, a forkserver worker, a Ray
worker) a ``SIGPROF`` interval timer raises ``DeadlineExceeded`` inside ``fn``; in any
other thread a watchdog thread polls the caller's CPU clock and raises the same
exception in it asynchronously (``PyThreadState_SetAsyncExc``). Limits, both ways:
the exception is raised between Python bytecodes, so a long call inside a C
extension (one huge ``lxml`` parse) ends only when that call returns; and the
exception derives from ``BaseException`` so that ``except Exception`` inside ``fn``
does not swallow it (it is re-raised until ``fn`` gives up, as a precaution).

CPU time rather than wall time so that a loaded machine does not cause timeouts;
a limit near a document's real cost can still differ between machines, so it is a
safety valve to set well above normal costs, and every timeout is counted.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

_REFIRE_S = 0.05  # after the deadline, raise again this often until fn gives up


class DeadlineExceeded(BaseException):
    """Raised inside the guarded call; never escapes ``CpuDeadline.call``."""


class CpuDeadline:
    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self._armed = False
        self._watchdog: _Watchdog | None = None

    def call(self, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """(timed_out, result): ``fn()``'s result, or (True, None) if it ran too long."""
        if not self.seconds:
            return False, fn()
        use_signal = _can_use_sigprof()
        timed_out, result = False, None
        try:
            self._arm(use_signal)
            result = fn()
        except DeadlineExceeded:
            timed_out = True
        finally:
            # a late signal may interrupt the disarming itself: retry until it is done
            while True:
                try:
                    self._disarm(use_signal)
                    break
                except DeadlineExceeded:
                    timed_out = True
        return timed_out, (None if timed_out else result)

    # -- main thread: SIGPROF
    def _on_sigprof(self, signum, frame) -> None:
        if self._armed:
            raise DeadlineExceeded

    def _arm(self, use_signal: bool) -> None:
        if use_signal:
            if signal.getsignal(signal.SIGPROF) != self._on_sigprof:
                signal.signal(signal.SIGPROF, self._on_sigprof)
            self._armed = True
            signal.setitimer(signal.ITIMER_PROF, self.seconds, _REFIRE_S)
        else:
            if self._watchdog is None:
                self._watchdog = _Watchdog()
            self._watchdog.arm(threading.get_ident(), self.seconds)

    def _disarm(self, use_signal: bool) -> None:
        if use_signal:
            self._armed = False  # from here on the handler does nothing
            signal.setitimer(signal.ITIMER_PROF, 0, 0)
        elif self._watchdog is not None:
            self._watchdog.disarm()


def _can_use_sigprof() -> bool:
    """Only the main thread may set signal handlers; respect a profiler's own SIGPROF."""
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGPROF)
    return current in (signal.SIG_DFL, signal.SIG_IGN, None) or \
        getattr(current, "__func__", None) is CpuDeadline._on_sigprof


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in thread ``ident`` at its next bytecode; None clears a pending one."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), None if exc is None else ctypes.py_object(exc))


class _Watchdog:
    """A daemon thread that interrupts one armed thread once its CPU clock passes a limit."""

    def __init__(self):
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._target: int | None = None  # thread ident while armed
        self._clock = 0
        self._limit = 0.0
        threading.Thread(target=self._loop, name="cpu-deadline", daemon=True).start()

    def arm(self, ident: int, seconds: float) -> None:
        clock = time.pthread_getcpuclockid(ident)
        with self._lock:
            self._target, self._clock = ident, clock
            self._limit = time.clock_gettime(clock) + seconds
            self._wake.notify()

    def disarm(self) -> None:
        with self._lock:
            ident, self._target = self._target, None
        if ident is not None:  # clear an exception set but not yet raised
            _set_async_exc(ident, None)

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._target is None:
                    self._wake.wait()
                left = self._limit - time.clock_gettime(self._clock)
                if left <= 0:
                    _set_async_exc(self._target, DeadlineExceeded)
                    left = _REFIRE_S
            time.sleep(min(max(left, 0.001), 0.25))
