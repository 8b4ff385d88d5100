"""A running service's membership of the fleet: join, heartbeat, pins, leave.

:class:`FleetMembership` is the loop every service process runs around a
:class:`~rollsafe.rpc.fleet.Fleet`::

    membership = FleetMembership(fleet, "conductor", socket.gethostname(), "2024.2",
                                 registry, serializers=[serializer], stores=[store])
    with membership:            # joins (too old: ServiceTooOldError), starts heartbeating
        membership.install_signal_handler()   # SIGHUP: refresh the pins now
        serve_forever()
    # left the fleet: its record is deleted, the heartbeat thread joined

- :meth:`~FleetMembership.start` joins the fleet (refused with
  :class:`~rollsafe.rpc.fleet.ServiceTooOldError` unless ``allow_too_old``),
  computes the pins, hands them to every follower, and starts a daemon
  thread that heartbeats every ``period`` seconds (``stale_after / 3`` by
  default, each interval shortened by up to ``jitter``, the first one drawn
  at random, so services started together spread their beats out).
- Each beat refreshes the service's heartbeat and the pins, and hands the
  pins to the **followers**: every :class:`~rollsafe.rpc.serializer.ObjectSerializer`
  (its ``target`` becomes :meth:`~FleetMembership.target`, so every send
  goes out at the pins without touching the store) and every
  :class:`~rollsafe.storage.Store` (``store.storage_versions = pins``, so
  every write is stored at versions the whole fleet reads). When an old
  service leaves or goes stale the pins rise at the next beat: nothing
  restarts.
- :meth:`~FleetMembership.refresh_now` refreshes the pins at once (after a
  deploy step, say); :meth:`~FleetMembership.request_refresh` asks the
  heartbeat thread to (safe from a signal handler: that is what SIGHUP
  does). Refreshes asked for together share one query of the store.
- A beat that fails (the store briefly down) is logged, kept in
  :attr:`~FleetMembership.last_error`, passed to ``on_error``, and tried
  again at the next beat; the followers keep the last pins meanwhile.
- :meth:`~FleetMembership.stop` stops the thread (waiting at most
  ``timeout`` seconds for a beat in progress) and leaves the fleet.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import FrameType, TracebackType
from typing import Any

from rollsafe.objects.registry import Registry
from rollsafe.rpc.fleet import Fleet, ServiceRecord, SingleFlight
from rollsafe.rpc.serializer import ObjectSerializer
from rollsafe.storage.store import Store

__all__ = ["FleetMembership"]

_LOG = logging.getLogger(__name__)

#: Follows the pins: an ObjectSerializer (its target) or a Store (its
#: storage_versions).
Follower = ObjectSerializer | Store


class FleetMembership:
    """Service ``name`` on ``host``, of ``release``, reading ``manifest``
    (a :class:`~rollsafe.Registry` or name -> version), as a live member of
    ``fleet`` while started.

    ``serializers`` and ``stores`` follow the pins (more with
    :meth:`follow`). ``period``: seconds between heartbeats (default
    ``fleet.stale_after / 3``; it must be shorter than ``stale_after``).
    ``jitter``: each interval is ``period`` shortened by a random fraction
    up to this. ``allow_too_old``: join even if the fleet no longer
    supports this service's versions (a fast-forward upgrade).
    ``on_error(exc)`` is called when a beat or refresh fails;
    ``on_change(before, after)`` when the pins change (``before`` is None
    for the first pins). ``stop_timeout``: what :meth:`stop` and the
    context manager wait at most for the thread."""

    def __init__(self, fleet: Fleet, name: str, host: str, release: str,
                 manifest: Registry | Mapping[str, str], *,
                 serializers: Iterable[ObjectSerializer] = (), stores: Iterable[Store] = (),
                 period: float | None = None, jitter: float = 0.2,
                 allow_too_old: bool = False,
                 on_error: Callable[[BaseException], None] | None = None,
                 on_change: Callable[[dict[str, str] | None, dict[str, str]], None] | None = None,
                 stop_timeout: float = 10.0) -> None:
        period = fleet.stale_after / 3 if period is None else float(period)
        if not 0 < period < fleet.stale_after:
            raise ValueError(f"period must be positive and shorter than the fleet's "
                             f"stale_after ({fleet.stale_after} s), got {period}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be a fraction in [0, 1), got {jitter}")
        self.fleet = fleet
        self.name = name
        self.host = host
        self.release = release
        self.manifest = (manifest.manifest() if isinstance(manifest, Registry)
                         else dict(manifest))
        self.period = period
        self.jitter = float(jitter)
        self.allow_too_old = allow_too_old
        self.on_error = on_error
        self.on_change = on_change
        self.stop_timeout = float(stop_timeout)
        #: The stored record while a member (None before start and after stop).
        self.record: ServiceRecord | None = None
        #: The error of the last beat or refresh, None once one succeeds.
        self.last_error: BaseException | None = None
        #: Beats that failed in a row.
        self.failures = 0
        #: Heartbeats that succeeded since start.
        self.beats = 0
        self._followers: list[Follower] = []
        self._pins: dict[str, str] | None = None
        self._lock = threading.Lock()        # followers, pins
        self._beat_lock = threading.Lock()   # one heartbeat write at a time; leave waits
        self._refreshes: SingleFlight[dict[str, str]] = SingleFlight()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._random = random.Random()
        self._signal: tuple[int, Any] | None = None  # (signum, previous handler)
        self.follow(*serializers, *stores)

    @property
    def service_id(self) -> str:
        """``f"{name}@{host}"``, the id of the fleet record."""
        return f"{self.name}@{self.host}"

    @property
    def running(self) -> bool:
        """True while the heartbeat thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- the pins and who follows them ----------------------------------
    @property
    def pins(self) -> dict[str, str] | None:
        """The pins last handed to the followers (None before start)."""
        with self._lock:
            return None if self._pins is None else dict(self._pins)

    def target(self) -> dict[str, str]:
        """The manifest to send at: the last pins (never queries the store
        once started). What followed serializers call as their target."""
        pins = self.pins
        return self.fleet.pins() if pins is None else pins

    def follow(self, *followers: Follower) -> None:
        """Make each serializer send at, and each store write at, the pins
        from now on (at once if they are known)."""
        for follower in followers:
            if not isinstance(follower, ObjectSerializer | Store):
                raise TypeError(f"only ObjectSerializer and Store instances follow the pins, "
                                f"not {type(follower).__name__}")
        with self._lock:
            for follower in followers:
                if not any(follower is known for known in self._followers):
                    self._followers.append(follower)
                if self._pins is not None:
                    _hand(follower, self._pins, self.target)

    def _apply(self, pins: dict[str, str]) -> None:
        with self._lock:
            before, self._pins = self._pins, dict(pins)
            for follower in self._followers:
                _hand(follower, pins, self.target)
        if before != pins:
            if before is not None:
                _LOG.info("%s: pins changed from %s to %s", self.service_id, before, pins)
            if self.on_change is not None:
                try:
                    self.on_change(None if before is None else dict(before), dict(pins))
                except Exception:
                    _LOG.exception("%s: the on_change hook failed", self.service_id)

    def refresh_now(self) -> dict[str, str]:
        """Recompute the pins from the store now, hand them to the followers
        and return them. Calls made while one runs share its query (and its
        error, if the store cannot be read)."""
        def refresh() -> dict[str, str]:
            pins = self.fleet.refresh()
            self._apply(pins)
            return pins

        return dict(self._refreshes.run(refresh))

    def request_refresh(self) -> None:
        """Ask the heartbeat thread to refresh the pins as soon as it can,
        without waiting: safe anywhere, signal handlers included. Requests
        made before it gets to them make one refresh."""
        self._wake.set()

    def install_signal_handler(self, signum: int | None = None) -> None:
        """Refresh the pins when the process receives ``signum`` (SIGHUP by
        default), through :meth:`request_refresh`; a handler installed
        before is still called after. Only the main thread can install
        signal handlers (RuntimeError elsewhere); :meth:`stop` puts the
        previous handler back."""
        if signum is None:
            signum = getattr(signal, "SIGHUP", None)
            if signum is None:
                raise RuntimeError("this platform has no SIGHUP: pass another signal number")
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                f"install_signal_handler must be called from the main thread (Python runs "
                f"signal handlers there only), not from {threading.current_thread().name!r}; "
                "call request_refresh() or refresh_now() from other threads")
        previous = signal.getsignal(signum)

        def handler(number: int, frame: FrameType | None) -> None:
            self.request_refresh()
            if callable(previous):
                previous(number, frame)

        signal.signal(signum, handler)
        if self._signal is None:  # a second install keeps the first previous handler
            self._signal = (signum, previous)

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> FleetMembership:
        """Join the fleet, hand the pins to the followers and start
        heartbeating; returns self. Raises what join raises
        (:class:`~rollsafe.rpc.fleet.ServiceTooOldError`, a storage error):
        nothing runs then. Starting a running membership does nothing."""
        if self.running:
            return self
        # A fresh event per run: a thread that a timed-out stop() left stuck
        # in the store still sees its own run stopped when it gets free.
        self._stopping = threading.Event()
        self._wake.clear()
        self.record = self.fleet.join(self.name, self.host, self.release, self.manifest,
                                      allow_too_old=self.allow_too_old)
        try:
            self.refresh_now()
        except BaseException:
            self._leave()
            raise
        self.last_error, self.failures = None, 0
        self._thread = threading.Thread(target=self._run, args=(self._stopping,),
                                        name=f"fleet-{self.service_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, leave: bool = True, timeout: float | None = None) -> None:
        """Stop heartbeating and, with ``leave``, delete this service's
        record (without it the record goes stale after ``stale_after``).
        Waits at most ``timeout`` seconds (default ``stop_timeout``) for a
        beat in progress; a leave that fails is logged (the record goes
        stale) and kept in :attr:`last_error`. Puts back a signal handler
        this membership replaced (from the main thread only)."""
        timeout = self.stop_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                _LOG.warning("%s: the heartbeat thread is still busy after %s s; leaving "
                             "without it", self.service_id, timeout)
        self._restore_signal()
        if not leave or self.record is None:
            self.record = None
            return
        # Leave on a thread of its own, so that a store that hangs cannot
        # hold stop() past its timeout; it waits for a beat in progress
        # (which would otherwise write the record again after the delete).
        leaver = threading.Thread(target=self._leave_after_beat, daemon=True,
                                  name=f"fleet-leave-{self.service_id}")
        leaver.start()
        leaver.join(max(deadline - time.monotonic(), 0.0))
        if leaver.is_alive():
            _LOG.warning("%s: leaving the fleet takes more than %s s; it goes on in the "
                         "background (else the record goes stale after %s s)",
                         self.service_id, timeout, self.fleet.stale_after)

    def _leave_after_beat(self) -> None:
        with self._beat_lock:
            self._leave()

    def _leave(self) -> None:
        record, self.record = self.record, None
        if record is None:
            return
        try:
            self.fleet.leave(record)
        except Exception as exc:
            self.last_error = exc
            _LOG.warning("%s: could not leave the fleet (its record goes stale after %s s): "
                         "%s", self.service_id, self.fleet.stale_after, exc)

    def _restore_signal(self) -> None:
        if self._signal is None or threading.current_thread() is not threading.main_thread():
            return
        signum, previous = self._signal
        self._signal = None
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    def __enter__(self) -> FleetMembership:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the heartbeat thread -----------------------------------------------
    def next_interval(self, first: bool = False) -> float:
        """Seconds to the next beat: ``period`` shortened by up to
        ``jitter`` of it; the first one anywhere in ``(0, period]``."""
        if first:
            return self.period * (1.0 - self._random.random())
        return self.period * (1.0 - self.jitter * self._random.random())

    def _run(self, stopping: threading.Event) -> None:
        next_beat = time.monotonic() + self.next_interval(first=True)
        while not stopping.is_set():
            woken = self._wake.wait(max(next_beat - time.monotonic(), 0.0))
            if stopping.is_set():
                return
            if woken:  # a refresh was asked for: not yet a beat
                self._wake.clear()
                self._guarded("refresh", self.refresh_now)
                continue
            self._guarded("heartbeat", self.beat)
            next_beat = time.monotonic() + self.next_interval()

    def beat(self) -> None:
        """One heartbeat: refresh this service's record and the pins (the
        thread does this every period; errors propagate here)."""
        with self._beat_lock:
            if self._stopping.is_set() or self.record is None:
                return
            self.record = self.fleet.heartbeat(self.record)
            self.beats += 1
        self.refresh_now()

    def _guarded(self, what: str, step: Callable[[], Any]) -> None:
        try:
            step()
        except Exception as exc:
            self.failures += 1
            self.last_error = exc
            _LOG.warning("%s: %s failed (%d in a row), trying again at the next beat: %s: %s",
                         self.service_id, what, self.failures, type(exc).__name__, exc)
            if self.on_error is not None:
                try:
                    self.on_error(exc)
                except Exception:
                    _LOG.exception("%s: the on_error hook failed", self.service_id)
        else:
            self.failures = 0
            self.last_error = None


def _hand(follower: Follower, pins: dict[str, str],
          target: Callable[[], dict[str, str]]) -> None:
    if isinstance(follower, ObjectSerializer):
        follower.target = target
    else:
        follower.storage_versions = dict(pins)
