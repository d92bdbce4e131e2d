"""The simulated world: per-pool FIFO queues served by Supervisor-run workers.

What it models (docs/simulator.md explains why each rule is there):
- a pool's workers take jobs first come, first served; a pool consuming several queues takes
  the first non-empty queue in its `--queue` order, as Laravel's worker pops them;
- a job runs for its own run time (job traces) or its bucket's mean (rate traces);
- a worker added at t takes jobs from t + startup_s on, and Supervisor shows it STARTING
  until `startsecs` have passed (it may serve before that: Supervisor's state lags);
- a worker told to stop stops at once when idle or still starting; a busy one finishes its
  job first ("draining") and holds its memory until then. As the actuator does, scale-down
  stops idle slots first, then busy ones, the highest index first in each group, and
  scale-up takes the lowest free indices (not one whose worker is still draining);
- the controller sees, at each tick, only what the Redis sampler and Supervisor would show:
  `observe` builds exactly the Observation the daemon builds.

Speed: a week of traffic is a few million jobs, so jobs are never objects. Each queue's jobs
are two packed arrays of doubles (arrival, run time) and a pointer to the first job not yet
started; the workers are a heap of (free at, slot). Between two ticks the pool's worker set
does not change except for start-ups, so the jobs of the interval are dispatched in one tight
loop; a pool in which nothing happened since the last tick is not looked at again.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_right
from collections.abc import Sequence

from autoscaler.laravel.queue_sample import QueueSample, WaitSource
from autoscaler.observe.observation import PoolObservation, WorkSample
from autoscaler.simulate.obs_builders import pool_observation, queue_sample, work_sample
from autoscaler.supervisord.slots import WorkerCounts
from autoscaler.traces.loader import QueueJobs

# Two scale events that go A -> B -> A within this long count as a reversal (issue 13: in
# steady load a pool should not alternate between two counts more often than this).
REVERSAL_WINDOW_S = 600.0


def percentile_sorted(values: Sequence[float], q: float) -> float:
    """numpy's default (linear) percentile of already sorted values, without numpy's per-call
    overhead (this runs for every pool at every tick)."""
    last = len(values) - 1
    position = last * q / 100.0
    low = int(position)  # position >= 0: int() is floor
    if low >= last:
        return values[last]
    return values[low] + (values[low + 1] - values[low]) * (position - low)


class PoolWorld:
    """One pool: its queues (in priority order), its workers and what they have done."""

    def __init__(
        self,
        *,
        name: str,
        queues: Sequence[str],
        jobs: Sequence[QueueJobs | None],
        workers: int,
        startup_s: float,
        startsecs_s: float,
        memory_per_worker_mb: float,
    ) -> None:
        self.name = name
        self.queues = tuple(queues)
        self.startup_s = startup_s
        self.startsecs_s = startsecs_s
        self.memory_per_worker_mb = memory_per_worker_mb
        # Jobs as packed C doubles (array.array): 8 bytes each, no Python object per job.
        self.arrival: list[array[float]] = []
        self.service: list[array[float]] = []
        for queue_jobs in jobs:
            if queue_jobs is None:
                self.arrival.append(array("d"))
                self.service.append(array("d"))
            else:
                self.arrival.append(array("d", queue_jobs.arrival_s.tobytes()))
                self.service.append(array("d", queue_jobs.service_s.tobytes()))
        self.sizes = [len(a) for a in self.arrival]
        self.next_start = [0] * len(self.queues)  # first job of each queue not started yet
        self.finished = [0] * len(self.queues)
        self.starts: list[array[float]] = [array("d") for _ in self.queues]  # per job
        # Workers: a heap of (free at, slot); free at <= now means idle since then.
        self.heap: list[tuple[float, int]] = []
        self.added_at: dict[int, float] = {}
        self.serving_from: dict[int, float] = {}  # slots not yet taking jobs at the last look
        self.running_at: dict[int, float] = {}  # slots Supervisor still showed STARTING
        # (free at, added at, slot) of stopping workers, busy until `free at`
        self.draining: list[tuple[float, float, int]] = []
        self.in_flight: list[tuple[float, int, float]] = []  # heap of (end, queue, run time)
        self.worker_seconds = 0.0
        # Worker time counts until here: the pool's own end (its last job, or the trace's end),
        # set once it is known, so that another pool still draining its backlog does not
        # bill this pool's idle workers (`diff` would call an unchanged pool cheaper).
        self.cost_end_s = math.inf
        self.scale_events = 0
        # a change back to the count before the previous change, within REVERSAL_WINDOW_S
        self.reversals = 0
        self._last_change = (-math.inf, -1)  # (when, the count before it)
        self.last_finish_s = 0.0
        # The last observation's parts, handed out again while nothing changes.
        self._samples = [
            QueueSample(
                queue=queue,
                pending=0,
                reserved=0,
                delayed=0,
                delayed_due=0,
                oldest_wait_s=None,
                oldest_wait_source="empty",
            )
            for queue in self.queues
        ]
        self._queue_samples = tuple(self._samples)
        self._idle_work = WorkSample(
            completions=0,
            failures=0,
            run_time_mean_s=None,
            run_time_p95_s=None,
            busy_workers=0.0,
            source="logs",
            arrivals=0.0,
        )
        self._counts = WorkerCounts(running=0, starting=0, draining=0)
        self._looked = False  # the first observation has no work sample, as the daemon's
        self._arrived = 0  # jobs arrived by the last look
        self._last: PoolObservation | None = None
        self._quiet_until = -math.inf  # no event before this: the last observation holds
        self._dirty = True  # the worker set changed since the counts were taken
        # _advance(until_s) starts every job a worker can take before `until_s`; a pool with
        # several queues picks among them as Laravel's worker pops them.
        self._advance = self._advance_single if len(self.queues) == 1 else self._advance_priority
        for _ in range(workers):  # the hand-written config's workers, already warm
            self._add(0.0, warm=True)

    # -- the world moving on ------------------------------------------------------------

    def _advance_single(self, until_s: float) -> None:
        heap, index, arrival = self.heap, self.next_start[0], self.arrival[0]
        if not heap or index >= self.sizes[0] or heap[0][0] >= until_s:
            return  # no worker frees up before then, or no job is left
        if arrival[index] >= until_s:
            return  # the next job arrives later
        in_flight, service, starts = self.in_flight, self.service[0], self.starts[0]
        size = self.sizes[0]
        replace, push = heapq.heapreplace, heapq.heappush
        while heap and index < size:
            free_at, slot = heap[0]
            if free_at >= until_s:
                break
            arrives = arrival[index]
            if arrives > free_at:  # the worker idles until the job arrives
                if arrives >= until_s:
                    break
                free_at = arrives
            run = service[index]
            end = free_at + run
            replace(heap, (end, slot))
            push(in_flight, (end, 0, run))
            starts.append(free_at)
            index += 1
        self.next_start[0] = index

    def _advance_priority(self, until_s: float) -> None:
        heap, in_flight = self.heap, self.in_flight
        arrival, service, starts = self.arrival, self.service, self.starts
        sizes, next_start = self.sizes, self.next_start
        order = range(len(self.queues))
        while heap:
            free_at, slot = heap[0]
            if free_at >= until_s:
                break
            # Laravel's pop order; oracle.look_ahead_misses repeats this pick inline.
            pick = pick_later = -1
            earliest = math.inf
            for queue in order:
                index = next_start[queue]
                if index < sizes[queue]:
                    arrives = arrival[queue][index]
                    if arrives <= free_at:
                        pick = queue
                        break
                    if arrives < earliest:  # strict: a tie goes to the earlier queue
                        earliest, pick_later = arrives, queue
            if pick < 0:
                if earliest >= until_s:
                    break
                free_at, pick = earliest, pick_later
            index = next_start[pick]
            run = service[pick][index]
            end = free_at + run
            heapq.heapreplace(heap, (end, slot))
            heapq.heappush(in_flight, (end, pick, run))
            starts[pick].append(free_at)
            next_start[pick] = index + 1

    # -- what the controller can see ----------------------------------------------------

    def look(self, now_s: float) -> PoolObservation:
        """`_advance(now_s)`, then `observe(now_s)`; when no event (an arrival, a completion,
        a worker starting or leaving) has happened since the last look and nothing waits,
        the world is as it was and the last observation is handed out again."""
        if now_s < self._quiet_until:
            assert self._last is not None
            return self._last
        self._advance(now_s)
        return self.observe(now_s)

    def _next_event_s(self, now_s: float) -> float:
        """When the next event can change what an observation without completions or
        arrivals shows (now, if a job waits: its wait grows)."""
        upcoming = math.inf
        for queue, sample in enumerate(self._samples):
            if sample.pending:
                return now_s
            index = self.next_start[queue]
            if index < self.sizes[queue]:
                upcoming = min(upcoming, self.arrival[queue][index])
        if self.in_flight:
            upcoming = min(upcoming, self.in_flight[0][0])
        for waiting in (self.serving_from, self.running_at):
            if waiting:
                upcoming = min(upcoming, *waiting.values())
        for free_at, _, _ in self.draining:
            upcoming = min(upcoming, free_at)
        return upcoming

    def observe(self, now_s: float) -> PoolObservation:
        """The pool as the sampler would see it at `now_s` (call after `_advance(now_s)`).

        As the daemon's Observer: the first observation has no work sample (there is no
        interval yet); later ones count the jobs finished since the previous one (the
        workers' log lines) and the jobs that arrived (Redis flow balance: completions plus
        the change in pending and reserved, which in the simulator is exact).

        This runs for every pool at every tick, so it is one flat function, and parts that
        did not change since the last look are handed out again instead of rebuilt (decide
        treats them as immutable).
        """
        in_flight = self.in_flight
        run_times: list[float] = []
        if in_flight and in_flight[0][0] <= now_s:
            finished, pop = self.finished, heapq.heappop
            while in_flight and in_flight[0][0] <= now_s:
                end, queue, run = pop(in_flight)
                finished[queue] += 1
                run_times.append(run)
            self.last_finish_s = end
        queues, arrived = self._observe_queues(now_s)
        arrivals = arrived - self._arrived
        self._arrived = arrived
        work: WorkSample | None = self._idle_work
        # Until the next event the world stands still, unless this interval counted jobs
        # (then the next observation counts none) or some wait (their waits grow).
        counted = bool(run_times or arrivals) or not self._looked
        if not self._looked:
            work = None  # no interval yet
            self._looked = True
        elif run_times:
            completions = len(run_times)
            if completions == 1:
                mean = p95 = run_times[0]
            else:
                run_times.sort()
                mean, p95 = sum(run_times) / completions, percentile_sorted(run_times, 95.0)
            # Each job in flight is in a worker's hands: that is the busy count.
            work = work_sample(completions, mean, p95, float(len(in_flight)), float(arrivals))
        elif arrivals or self._idle_work.busy_workers != len(in_flight):
            work = work_sample(0, None, None, float(len(in_flight)), float(arrivals))
            if not arrivals:
                self._idle_work = work
        workers = (
            self.counts(now_s)
            if self.serving_from or self.running_at or self.draining or self._dirty
            else self._counts
        )
        self._quiet_until = now_s if counted else self._next_event_s(now_s)
        last = self._last
        if (
            last is not None
            and last.queues is queues
            and last.work is work
            and last.workers is workers
        ):
            return last
        self._last = pool_observation(self.name, queues, work, workers)
        return self._last

    def _observe_queues(self, now_s: float) -> tuple[tuple[QueueSample, ...], int]:
        """Every queue's sample, and how many jobs have arrived by `now_s` in all."""
        samples, next_start, finished = self._samples, self.next_start, self.finished
        changed = False
        arrived = 0
        for queue, previous in enumerate(samples):
            started = next_start[queue]
            arrivals = self.arrival[queue]
            by_now = bisect_right(arrivals, now_s, started)  # the started ones came before
            arrived += by_now
            pending = by_now - started
            reserved = started - finished[queue]
            wait: float | None = None
            source: WaitSource = "empty"
            if pending == 0:
                if previous.pending == 0 and previous.reserved == reserved:
                    continue  # still empty, nothing new in flight: the same sample
            else:
                wait, source = now_s - arrivals[started], "createdAt"
            samples[queue] = queue_sample(previous.queue, pending, reserved, wait, source)
            changed = True
        if changed:
            self._queue_samples = tuple(samples)
        return self._queue_samples, arrived

    def counts(self, now_s: float) -> WorkerCounts:
        """Supervisor's view of the slots: RUNNING, STARTING, STOPPING."""
        self._dirty = False
        for waiting in (self.serving_from, self.running_at):
            if waiting:
                for slot in [s for s, at in waiting.items() if at <= now_s]:
                    del waiting[slot]
        if self.draining:
            self._retire_drained(now_s)
        starting = len(self.running_at)
        last = self._counts
        running, draining = len(self.heap) - starting, len(self.draining)
        if last.running != running or last.starting != starting or last.draining != draining:
            self._counts = WorkerCounts(running=running, starting=starting, draining=draining)
        return self._counts

    def _retire_drained(self, now_s: float) -> None:
        still = []
        for entry in self.draining:
            free_at, added_at, _ = entry
            if free_at <= now_s:
                self.worker_seconds += min(free_at, self.cost_end_s) - added_at
            else:
                still.append(entry)
        self.draining = still

    def memory_mb(self) -> float:
        """Memory held now: every running, starting and draining worker."""
        return (len(self.heap) + len(self.draining)) * self.memory_per_worker_mb

    @property
    def size(self) -> int:
        """Running plus starting workers: the count a plan sets."""
        return len(self.heap)

    def done(self) -> bool:
        """Every job has started and finished."""
        return not self.in_flight and all(
            index >= size for index, size in zip(self.next_start, self.sizes, strict=True)
        )

    # -- applying a plan -----------------------------------------------------------------

    def scale_to(self, count: int, now_s: float) -> None:
        """Add or stop workers so that `count` run or start (call after `counts(now_s)`)."""
        change = count - len(self.heap)
        if change == 0:
            return
        self.scale_events += 1
        before = len(self.heap)
        if count == self._last_change[1] and now_s - self._last_change[0] < REVERSAL_WINDOW_S:
            self.reversals += 1
        self._last_change = (now_s, before)
        self._quiet_until = -math.inf
        self._dirty = True
        if change > 0:
            for _ in range(change):
                self._add(now_s)
            return
        stopped = self.stop_order(now_s)[:-change]
        gone = {slot for _, slot in stopped}
        for free_at, slot in stopped:
            added_at = self.added_at.pop(slot)
            self.running_at.pop(slot, None)
            booting = self.serving_from.pop(slot, None) is not None
            if free_at > now_s and not booting:  # busy: finish the job, then exit
                self.draining.append((free_at, added_at, slot))
            else:
                self.worker_seconds += max(0.0, min(now_s, self.cost_end_s) - added_at)
        self.heap = [entry for entry in self.heap if entry[1] not in gone]
        heapq.heapify(self.heap)

    def is_busy(self, entry: tuple[float, int], now_s: float) -> bool:
        """Whether the worker of a heap entry has a job in hand at `now_s`."""
        return entry[0] > now_s and entry[1] not in self.serving_from

    def stop_order(self, now_s: float) -> list[tuple[float, int]]:
        """The running and starting workers in the order a scale-down stops them: idle
        (or starting) ones first, then busy ones; the highest slot index first in each."""
        return sorted(self.heap, key=lambda e: (self.is_busy(e, now_s), -e[1]))

    def _add(self, now_s: float, *, warm: bool = False) -> None:
        # The lowest index free: not held by a running, starting or draining worker.
        taken = {slot for _, slot in self.heap} | {slot for _, _, slot in self.draining}
        slot = next(index for index in range(len(taken) + 1) if index not in taken)
        self.added_at[slot] = now_s
        if warm:
            heapq.heappush(self.heap, (now_s, slot))
            return
        serving = now_s + self.startup_s
        heapq.heappush(self.heap, (serving, slot))
        if serving > now_s:
            self.serving_from[slot] = serving
        running = now_s + max(self.startup_s, self.startsecs_s)
        if running > now_s:
            self.running_at[slot] = running

    # -- the end ---------------------------------------------------------------------------

    def finish(self, end_s: float) -> None:
        """Stop the clock at `end_s`: every worker still there exits then."""
        end_s = min(end_s, self.cost_end_s)
        for added_at in self.added_at.values():
            self.worker_seconds += max(0.0, end_s - added_at)
        self.added_at = {}
        for free_at, added_at, _ in self.draining:
            self.worker_seconds += min(free_at, end_s) - added_at
        self.draining = []
        while self.in_flight:
            end, queue, _ = heapq.heappop(self.in_flight)
            if end <= end_s:
                self.finished[queue] += 1
                self.last_finish_s = max(self.last_finish_s, end)
