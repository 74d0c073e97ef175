"""The waiting queue: priority order with aging, O(1) cancel, the oldest request, prompt-length buckets.

Ordering key, smallest first:
- priority queue with aging (default): ``(arrival_s - priority * aging_s, arrival_s, seq)``. With continuous
  aging the effective priority of a request at time t is ``priority + (t - arrival_s) / aging_s``; comparing
  two requests' effective priorities at the same t is the same as comparing ``arrival_s - priority*aging_s``,
  so the key never changes while a request waits.
- priority queue without aging: ``(-priority, arrival_s, seq)``.
- FCFS (enable_priority_queue=False): ``(arrival_s, 0, seq)``.

Structure: requests are split into *lanes* (one per priority level 1..10, a single lane for FCFS, or one per
prompt-length bucket for coalescing). Within a priority lane keys grow with arrival, so a lane is a FIFO
deque (O(1) push and pop, and cache-friendly at any depth); a request pushed out of order (a re-queued
preempted request, or a bucket lane's mix of priorities) goes to the lane's side heap (O(log n)). A heap of
lane heads (one valid item per lane, updated eagerly, stale items skipped) gives the head of the whole
queue in O(log lanes). The oldest waiting request is the earliest lane head (a priority or FCFS lane is in
arrival order); bucket lanes mix priorities, so with buckets one more lane keyed by arrival answers it. Cancel
is O(1): the entry is marked dead and skipped when it reaches the front (dead entries at a lane's front are
dropped at once); a lane is compacted when its dead entries outnumber its live ones by 1024 (amortised O(1)).
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

_COMPACT_SLACK = 1024


@dataclass(slots=True)
class SchedRequest:
    """What a real server sees of a request: no true output length."""

    request_id: str
    prompt_tokens: int
    max_tokens: int
    priority: int = 5  # 1 lowest .. 10 highest
    arrival_s: float = 0.0  # enqueue time on the injected clock


class Entry:
    """One waiting request; `alive` is cleared when it leaves the queue."""

    __slots__ = ("req", "k1", "k2", "seq", "alive", "bucket", "uid", "payload", "lane", "item")
    _uids = itertools.count()

    def __init__(self, req: SchedRequest, k1: float, k2: float, seq: int) -> None:
        self.req = req
        self.k1 = k1
        self.k2 = k2
        self.seq = seq
        self.alive = True
        self.bucket: int | None = None
        self.uid = next(Entry._uids)  # orders a re-queued request's new entry after its dead old one
        self.payload: object = None  # the core's per-request state, to skip a lookup per dispatch
        self.lane = 0  # the lane (priority level, or bucket) that holds it
        self.item: tuple = ()  # its (k1, k2, seq, entry) tuple in that lane

    def __lt__(self, other: Entry) -> bool:
        return self.uid < other.uid

    @property
    def key(self) -> tuple[float, float, int]:
        return (self.k1, self.k2, self.seq)


class _Lane:
    """Items (k1, k2, seq, entry) in key order: a FIFO deque for in-order pushes, a side heap for the rest."""

    __slots__ = ("dq", "side", "last", "live", "dead")

    def __init__(self) -> None:
        self.dq: deque[tuple] = deque()
        self.side: list[tuple] = []
        self.last: tuple | None = None
        self.live = 0
        self.dead = 0

    def push(self, item: tuple) -> None:
        self.live += 1
        if self.last is None or self.last < item:
            self.dq.append(item)
            self.last = item
        else:
            heapq.heappush(self.side, item)

    def head(self) -> tuple | None:
        dq, side = self.dq, self.side
        while dq and not dq[0][3].alive:
            dq.popleft()
            self.dead -= 1
        while side and not side[0][3].alive:
            heapq.heappop(side)
            self.dead -= 1
        if dq:
            return side[0] if side and side[0] < dq[0] else dq[0]
        return side[0] if side else None

    def remove_head(self, item: tuple) -> None:
        """Remove `item`, the lane's first live item."""
        dq = self.dq
        while dq and not dq[0][3].alive:
            dq.popleft()
            self.dead -= 1
        if dq and dq[0] is item:
            dq.popleft()
        else:
            side = self.side
            while not side[0][3].alive:
                heapq.heappop(side)
                self.dead -= 1
            heapq.heappop(side)
        self.live -= 1

    def note_dead(self) -> None:
        self.live -= 1
        self.dead += 1
        dq = self.dq
        while dq and not dq[0][3].alive:  # dead at the front (the oldest left first, the usual case): drop now
            dq.popleft()
            self.dead -= 1
        if self.dead > self.live + _COMPACT_SLACK:
            self.dq = deque(x for x in self.dq if x[3].alive)
            self.side = [x for x in self.side if x[3].alive]
            heapq.heapify(self.side)
            self.dead = 0


class WaitingQueue:
    def __init__(self, enable_priority: bool, aging_ms: float | None) -> None:
        self.enable_priority = enable_priority
        self.aging_s = None if aging_ms is None else aging_ms / 1000.0
        self._by_id: dict[str, Entry] = {}
        self._seq = 0
        self.tokens = 0  # sum of prompt tokens waiting
        self._arrival = _Lane()  # bucket mode only: items (arrival_s, 0.0, seq, entry), for oldest()
        self._lanes: dict[int, _Lane] = {}
        self._heads: list[tuple] = []  # heap of lane-head items; an item is valid while _head[lane] is it
        self._head: dict[int, tuple] = {}
        self.bucket_width: int | None = None  # set: lanes are prompt-length buckets (coalescing)
        self._bucket_tokens: dict[int, int] = {}
        self._nonempty: list[int] = []  # sorted bucket ids with live entries
        self.last_stop = ""  # the limit that ended the last take_prefix (see there)

    # ---- ordering -------------------------------------------------------------------------------------
    def key_of(self, req: SchedRequest) -> tuple[float, float]:
        if not self.enable_priority:
            return (req.arrival_s, 0.0)
        if self.aging_s is None:
            return (-float(req.priority), req.arrival_s)
        return (req.arrival_s - req.priority * self.aging_s, req.arrival_s)

    def effective_priority(self, req: SchedRequest, now: float) -> float:
        if not self.enable_priority:
            return 0.0
        if self.aging_s is None:
            return float(req.priority)
        return req.priority + max(0.0, now - req.arrival_s) / self.aging_s

    def _lane_of(self, req: SchedRequest) -> int:
        if self.bucket_width is not None:
            return req.prompt_tokens // self.bucket_width
        return req.priority if self.enable_priority else 0

    # ---- basic operations -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def by_id(self) -> dict[str, Entry]:
        """The waiting entries by request id (read-only for callers; the same dict for the queue's life)."""
        return self._by_id

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._by_id

    def push(self, req: SchedRequest, seq: int | None = None, payload: object = None) -> Entry:
        """Queue a request. `seq` (tie-break) is kept when a preempted request is re-queued."""
        if seq is None:
            seq = self._seq
            self._seq += 1
        k1, k2 = self.key_of(req)
        entry = Entry(req, k1, k2, seq)
        entry.payload = payload
        self._by_id[req.request_id] = entry
        if self.bucket_width is not None:
            self._arrival.push((req.arrival_s, 0.0, seq, entry))
        self.tokens += req.prompt_tokens
        self._file(entry)
        return entry

    def _file(self, entry: Entry) -> None:
        lane_id = self._lane_of(entry.req)
        entry.lane = lane_id
        item = entry.item = (entry.k1, entry.k2, entry.seq, entry)
        lane = self._lanes.get(lane_id)
        if lane is None:
            lane = self._lanes[lane_id] = _Lane()
            if self.bucket_width is not None:
                self._bucket_tokens[lane_id] = 0
                insort(self._nonempty, lane_id)
        if self.bucket_width is not None:
            entry.bucket = lane_id
            self._bucket_tokens[lane_id] += entry.req.prompt_tokens
        lane.push(item)
        old = self._head.get(lane_id)
        if old is None or item < old:
            self._set_head(lane_id, item)

    def _set_head(self, lane_id: int, item: tuple) -> None:
        self._head[lane_id] = item
        heapq.heappush(self._heads, item)
        if len(self._heads) > 2 * len(self._head) + 16:  # drop stale items: O(lanes), amortised
            self._heads = list(self._head.values())
            heapq.heapify(self._heads)

    def _drop_lane(self, lane_id: int) -> None:
        del self._lanes[lane_id], self._head[lane_id]
        if self.bucket_width is not None:
            self._nonempty.pop(bisect_left(self._nonempty, lane_id))
            del self._bucket_tokens[lane_id]

    def _pop_item(self, item: tuple) -> None:
        """Remove a lane's head item and do the leaving bookkeeping (the hot path of every dispatch)."""
        entry = item[3]
        lane_id = entry.lane
        lane = self._lanes[lane_id]
        lane.remove_head(item)
        entry.alive = False
        req = entry.req
        del self._by_id[req.request_id]
        self.tokens -= req.prompt_tokens
        if self.bucket_width is not None:
            self._arrival.note_dead()
            self._bucket_tokens[lane_id] -= req.prompt_tokens
        if lane.live == 0:
            self._drop_lane(lane_id)
        else:
            self._set_head(lane_id, lane.head())

    def remove(self, request_id: str) -> Entry | None:
        """Cancel: O(1) plus amortised compaction; the entry stays in its lane, dead, until it surfaces."""
        entry = self._by_id.get(request_id)
        if entry is None:
            return None
        entry.alive = False
        req = entry.req
        del self._by_id[request_id]
        self.tokens -= req.prompt_tokens
        lane_id = entry.lane
        lane = self._lanes[lane_id]
        lane.note_dead()
        if self.bucket_width is not None:
            self._arrival.note_dead()
            self._bucket_tokens[lane_id] -= req.prompt_tokens
        if lane.live == 0:
            self._drop_lane(lane_id)
        elif self._head[lane_id] is entry.item:  # the lane's head left: file its new head
            self._set_head(lane_id, lane.head())
        return entry

    def _head_item(self) -> tuple | None:
        heads, head_of = self._heads, self._head
        while heads:
            item = heads[0]
            if head_of.get(item[3].lane) is item:
                return item
            heapq.heappop(heads)  # stale: that lane's head has changed or the lane emptied
        return None

    def peek(self) -> Entry | None:
        item = self._head_item()
        return None if item is None else item[3]

    def pop(self) -> Entry | None:
        item = self._head_item()
        if item is None:
            return None
        self._pop_item(item)
        return item[3]

    def take_prefix(self, cap: int, budget: int, kv: int) -> list[Entry]:
        """Pop the head while the batch fits: members <= cap, members x longest prompt <= budget, members x
        (longest prompt + largest max_tokens) <= kv; the first always fits. `last_stop` names the limit that
        ended it: request_cap, token_budget, kv_capacity, or exhausted (nothing left to take)."""
        members: list[Entry] = []
        lp = lm = 0
        stop = "request_cap"
        head_of = self._head
        while len(members) < cap:
            heads = self._heads  # re-read: a pop may rebuild the heap (see _set_head)
            while heads:  # _head_item, inlined: the best valid lane head
                item = heads[0]
                if head_of.get(item[3].lane) is item:
                    break
                heapq.heappop(heads)
            else:
                stop = "exhausted"
                break
            req = item[3].req
            p = lp if lp >= req.prompt_tokens else req.prompt_tokens
            m = lm if lm >= req.max_tokens else req.max_tokens
            n = len(members) + 1
            if n > 1 and (n * p > budget or n * (p + m) > kv):
                stop = "token_budget" if n * p > budget else "kv_capacity"
                break
            self._pop_item(item)
            members.append(item[3])
            lp, lm = p, m
        self.last_stop = stop
        return members

    def top(self, k: int) -> list[Entry]:
        """The k first entries in queue order, without removing them: O(k^2 log k) plus stale items passed."""
        self._head_item()  # drop stale items above the best head
        heads, head_of, lanes = self._heads, self._head, []
        frontier = [(heads[0], 0)] if heads else []
        want = min(k, len(head_of))
        while frontier and len(lanes) < want:  # the k best lane heads: the global top-k lies in their lanes
            item, i = heapq.heappop(frontier)
            lane_id = item[3].lane
            if head_of.get(lane_id) is item and lane_id not in lanes:
                lanes.append(lane_id)
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(heads):
                    heapq.heappush(frontier, (heads[child], child))
        # k-way merge over those lanes, walking each lane's deque in order and its side heap as a tree
        merge: list[tuple] = []
        for lane_id in lanes:
            lane = self._lanes[lane_id]
            if lane.dq:
                merge.append((lane.dq[0], 0, lane_id, 0))
            if lane.side:
                merge.append((lane.side[0], 1, lane_id, 0))
        heapq.heapify(merge)
        out: list[Entry] = []
        while merge and len(out) < k:
            item, kind, lane_id, i = heapq.heappop(merge)
            if item[3].alive:
                out.append(item[3])
            lane = self._lanes[lane_id]
            if kind == 0:
                if i + 1 < len(lane.dq):
                    heapq.heappush(merge, (lane.dq[i + 1], 0, lane_id, i + 1))
            else:
                side, c = lane.side, 2 * i + 1
                for child in (c, c + 1):
                    if child < len(side):
                        heapq.heappush(merge, (side[child], 1, lane_id, child))
        return out

    def oldest(self) -> Entry | None:
        """The waiting request that arrived first (ties: queued first). Priority and FCFS lanes are each in
        arrival order (one priority per lane), so it is the earliest of the lane heads: O(lanes), lanes <= 10,
        and no second structure to keep up. Prompt-length buckets mix priorities: an arrival-ordered lane."""
        if self.bucket_width is not None:
            item = self._arrival.head()
            return None if item is None else item[3]
        best: Entry | None = None
        for item in self._head.values():
            e = item[3]
            if (
                best is None
                or e.req.arrival_s < best.req.arrival_s
                or (e.req.arrival_s == best.req.arrival_s and e.seq < best.seq)
            ):
                best = e
        return best

    def entries(self) -> Iterator[Entry]:
        return iter(self._by_id.values())

    # ---- coalescing buckets ---------------------------------------------------------------------------
    def enable_buckets(self, width: int | None) -> None:
        """Lanes become `width`-token prompt buckets (None: priority lanes again). O(n log n), once per switch."""
        if width == self.bucket_width:
            return
        self.bucket_width = width
        self._lanes, self._heads, self._head, self._bucket_tokens, self._nonempty = {}, [], {}, {}, []
        self._arrival = _Lane()
        for entry in sorted(self._by_id.values(), key=lambda e: e.key):
            entry.bucket = None
            self._file(entry)
        if width is not None:
            for entry in sorted(self._by_id.values(), key=lambda e: (e.req.arrival_s, e.seq)):
                self._arrival.push((entry.req.arrival_s, 0.0, entry.seq, entry))

    def bucket_of(self, prompt_tokens: int) -> int:
        assert self.bucket_width is not None
        return prompt_tokens // self.bucket_width

    def bucket_count(self, b: int) -> int:
        lane = self._lanes.get(b) if self.bucket_width is not None else None
        return lane.live if lane is not None else 0

    def bucket_tokens(self, b: int) -> int:
        return self._bucket_tokens.get(b, 0)

    def bucket_peek(self, b: int) -> Entry | None:
        item = self._head.get(b) if self.bucket_width is not None else None
        return None if item is None else item[3]

    def bucket_pop(self, b: int) -> Entry | None:
        item = self._head.get(b) if self.bucket_width is not None else None
        if item is None:
            return None
        self._pop_item(item)
        return item[3]

    def nearest_buckets(self, b: int) -> Iterator[int]:
        """Non-empty buckets other than b, nearest first (ties: the shorter bucket first)."""
        ids = list(self._nonempty)  # snapshot: popping may empty buckets while iterating
        i = bisect_left(ids, b)
        lo, hi = i - 1, i + 1 if i < len(ids) and ids[i] == b else i
        while lo >= 0 or hi < len(ids):
            if hi >= len(ids) or (lo >= 0 and b - ids[lo] <= ids[hi] - b):
                yield ids[lo]
                lo -= 1
            else:
                yield ids[hi]
                hi += 1

    def bucket_summary(self) -> dict[str, int]:
        """Waiting requests per non-empty bucket, labelled by prompt-length range."""
        if self.bucket_width is None:
            return {}
        w = self.bucket_width
        return {f"{b * w}-{(b + 1) * w - 1}": self._lanes[b].live for b in self._nonempty}
