"""The waiting queue: a priority heap with aging, an arrival heap, and optional prompt-length buckets.

Every operation the scheduler makes per decision is O(log n) or O(1) amortised: push and pop are heap
operations, cancel is O(1) (lazy deletion: the entry is marked dead and skipped when it surfaces), and
the oldest waiting request is the top of a second heap keyed by arrival. Heaps are compacted when dead
entries outnumber live ones (amortised O(1) per operation).

Ordering (the heap key), smallest first:
- priority queue with aging (default): ``(arrival_s - priority * aging_s, arrival_s, seq)``. With continuous
  aging the effective priority of a request at time t is ``priority + (t - arrival_s) / aging_s``; comparing
  two requests' effective priorities at the same t is the same as comparing ``arrival_s - priority*aging_s``,
  so the key never changes while a request waits and the heap stays valid.
- priority queue without aging: ``(-priority, arrival_s, seq)``.
- FCFS (enable_priority_queue=False): ``(arrival_s, 0, seq)``.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
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
    """One waiting request in the heaps; `alive` is cleared when it leaves the queue."""

    __slots__ = ("req", "k1", "k2", "seq", "alive", "bucket", "uid", "payload")
    _uids = itertools.count()

    def __init__(self, req: SchedRequest, k1: float, k2: float, seq: int) -> None:
        self.req = req
        self.k1 = k1
        self.k2 = k2
        self.seq = seq
        self.alive = True
        self.bucket: int | None = None
        self.payload: object = None  # the core's per-request state, to skip a lookup per dispatch
        self.uid = next(Entry._uids)  # orders a re-queued request's new entry after its dead old one

    def __lt__(self, other: Entry) -> bool:
        return self.uid < other.uid

    @property
    def key(self) -> tuple[float, float, int]:
        return (self.k1, self.k2, self.seq)


class _LazyHeap:
    """Min-heap of (k1, k2, seq, entry) with lazy deletion and compaction."""

    __slots__ = ("items", "dead")

    def __init__(self) -> None:
        self.items: list[tuple[float, float, int, Entry]] = []
        self.dead = 0

    def push(self, entry: Entry, k1: float, k2: float) -> None:
        heapq.heappush(self.items, (k1, k2, entry.seq, entry))

    def _clean(self) -> None:
        items = self.items
        while items and not items[0][3].alive:
            heapq.heappop(items)
            self.dead -= 1

    def peek(self) -> Entry | None:
        self._clean()
        return self.items[0][3] if self.items else None

    def pop(self) -> Entry | None:
        self._clean()
        return heapq.heappop(self.items)[3] if self.items else None

    def note_dead(self) -> None:
        self.dead += 1
        if self.dead > len(self.items) - self.dead + _COMPACT_SLACK:
            self.items = [item for item in self.items if item[3].alive]
            heapq.heapify(self.items)
            self.dead = 0

    def top_live(self, k: int) -> list[Entry]:
        """The k smallest live entries without modifying the heap: O(k log k + dead entries passed)."""
        items = self.items
        n = len(items)
        out: list[Entry] = []
        if not n or k <= 0:
            return out
        push, pop = heapq.heappush, heapq.heappop
        frontier = [(items[0], 0)]
        while frontier:
            item, i = pop(frontier)
            if item[3].alive:
                out.append(item[3])
                if len(out) == k:
                    break
            c = 2 * i + 1
            if c < n:
                push(frontier, (items[c], c))
                if c + 1 < n:
                    push(frontier, (items[c + 1], c + 1))
        return out


class WaitingQueue:
    """Two modes with the same interface. Plain: one priority heap (plus the arrival heap). Bucketed
    (coalescing): one heap per prompt-length bucket and a heap of bucket heads, so taking from a bucket
    never leaves dead entries near the top of a global heap; the head of the queue is the best bucket head."""

    def __init__(self, enable_priority: bool, aging_ms: float | None) -> None:
        self.enable_priority = enable_priority
        self.aging_s = None if aging_ms is None else aging_ms / 1000.0
        self._prio = _LazyHeap()
        self._arrival = _LazyHeap()
        self._by_id: dict[str, Entry] = {}
        self._seq = 0
        self.tokens = 0  # sum of prompt tokens waiting
        # coalescing buckets (bucketed mode)
        self.bucket_width: int | None = None
        self._buckets: dict[int, _LazyHeap] = {}
        self._bucket_count: dict[int, int] = {}
        self._bucket_tokens: dict[int, int] = {}
        self._nonempty: list[int] = []  # sorted bucket ids with live entries
        # heap of (key of a bucket's head, bucket); an item is valid while it equals _head[bucket] (eagerly kept)
        self._heads: list[tuple[float, float, int, int]] = []
        self._head: dict[int, tuple[float, float, int, int]] = {}

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

    # ---- basic operations -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

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
        self._arrival.push(entry, req.arrival_s, 0.0)
        self.tokens += req.prompt_tokens
        if self.bucket_width is None:
            self._prio.push(entry, k1, k2)
        else:
            self._bucket_add(entry)
        return entry

    def _leave(self, entry: Entry, popped_from: _LazyHeap | None) -> None:
        entry.alive = False
        del self._by_id[entry.req.request_id]
        self.tokens -= entry.req.prompt_tokens
        self._arrival.note_dead()
        b = entry.bucket
        if b is None:
            if popped_from is None:
                self._prio.note_dead()
            return
        heap = self._buckets[b]
        if popped_from is None:
            heap.note_dead()
        self._bucket_count[b] -= 1
        self._bucket_tokens[b] -= entry.req.prompt_tokens
        if self._bucket_count[b] == 0:
            self._nonempty.pop(bisect_left(self._nonempty, b))
            del self._buckets[b], self._bucket_count[b], self._bucket_tokens[b], self._head[b]
        elif self._head[b][2] == entry.seq:  # the bucket's head left: file its new head
            new = heap.peek()
            item = (new.k1, new.k2, new.seq, b)
            self._head[b] = item
            self._push_head(item)

    def _push_head(self, item: tuple[float, float, int, int]) -> None:
        heapq.heappush(self._heads, item)
        if len(self._heads) > 2 * len(self._head) + 16:  # drop stale items: O(buckets), amortised
            self._heads = list(self._head.values())
            heapq.heapify(self._heads)

    def remove(self, request_id: str) -> Entry | None:
        """Cancel: O(1) plus amortised compaction."""
        entry = self._by_id.get(request_id)
        if entry is not None:
            self._leave(entry, None)
        return entry

    def peek(self) -> Entry | None:
        if self.bucket_width is None:
            return self._prio.peek()
        heads, head = self._heads, self._head
        while heads:
            item = heads[0]
            if head.get(item[3]) == item:
                return self._buckets[item[3]].peek()
            heapq.heappop(heads)  # stale: that bucket's head has changed or the bucket emptied
        return None

    def pop(self) -> Entry | None:
        if self.bucket_width is None:
            entry = self._prio.pop()
            if entry is not None:
                self._leave(entry, self._prio)
            return entry
        head = self.peek()
        return None if head is None else self.bucket_pop(head.bucket)

    def take_prefix(self, cap: int, budget: int, kv: int) -> list[Entry]:
        """Pop the head while the batch fits: members <= cap, members x longest prompt <= budget, members x
        (longest prompt + largest max_tokens) <= kv; the first always fits. The hot loop of every static
        dispatch, flattened for the plain mode (no per-member method calls)."""
        if self.bucket_width is not None or not self._by_id:
            return self._take_generic(cap, budget, kv)
        prio, arrival, by_id = self._prio, self._arrival, self._by_id
        items, pop = prio.items, heapq.heappop
        members: list[Entry] = []
        lp = lm = 0
        while len(members) < cap:
            while items and not items[0][3].alive:
                pop(items)
                prio.dead -= 1
            if not items:
                break
            entry = items[0][3]
            req = entry.req
            p = lp if lp >= req.prompt_tokens else req.prompt_tokens
            m = lm if lm >= req.max_tokens else req.max_tokens
            n = len(members) + 1
            if n > 1 and (n * p > budget or n * (p + m) > kv):
                break
            pop(items)
            entry.alive = False
            del by_id[req.request_id]
            self.tokens -= req.prompt_tokens
            arrival.note_dead()
            members.append(entry)
            lp, lm = p, m
        return members

    def _take_generic(self, cap: int, budget: int, kv: int) -> list[Entry]:
        members: list[Entry] = []
        lp = lm = 0
        while len(members) < cap:
            head = self.peek()
            if head is None:
                break
            req = head.req
            p, m, n = max(lp, req.prompt_tokens), max(lm, req.max_tokens), len(members) + 1
            if n > 1 and (n * p > budget or n * (p + m) > kv):
                break
            members.append(self.pop())
            lp, lm = p, m
        return members

    def top(self, k: int) -> list[Entry]:
        """The k first entries in queue order, without removing them: O(k log k) plain, O(k^2 log k) bucketed."""
        if self.bucket_width is None:
            return self._prio.top_live(k)
        self.peek()  # drop stale items above the best head
        heads, head, buckets = self._heads, self._head, []
        frontier = [(heads[0], 0)] if heads else []
        want = min(k, len(head))
        while frontier and len(buckets) < want:  # the k best bucket heads: the global top-k lies in their buckets
            item, i = heapq.heappop(frontier)
            if head.get(item[3]) == item and item[3] not in buckets:  # an old item can be valid again: skip repeats
                buckets.append(item[3])
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(heads):
                    heapq.heappush(frontier, (heads[child], child))
        found = [e for b in buckets for e in self._buckets[b].top_live(k)]
        return heapq.nsmallest(k, found, key=lambda e: (e.k1, e.k2, e.seq))

    def oldest(self) -> Entry | None:
        return self._arrival.peek()

    def entries(self) -> Iterator[Entry]:
        return iter(self._by_id.values())

    # ---- coalescing buckets ---------------------------------------------------------------------------
    def enable_buckets(self, width: int | None) -> None:
        """Switch to bucketed mode with `width`-token buckets, or back to plain (None). O(n), once."""
        if width == self.bucket_width:
            return
        self.bucket_width = width
        self._buckets, self._bucket_count, self._bucket_tokens, self._nonempty = {}, {}, {}, []
        self._heads, self._head, self._prio = [], {}, _LazyHeap()
        for entry in self._by_id.values():
            entry.bucket = None
            if width is None:
                self._prio.push(entry, entry.k1, entry.k2)
            else:
                self._bucket_add(entry)

    def _bucket_add(self, entry: Entry) -> None:
        assert self.bucket_width is not None
        b = entry.req.prompt_tokens // self.bucket_width
        entry.bucket = b
        heap = self._buckets.get(b)
        if heap is None:
            heap = self._buckets[b] = _LazyHeap()
            self._bucket_count[b] = 0
            self._bucket_tokens[b] = 0
            insort(self._nonempty, b)
        heap.push(entry, entry.k1, entry.k2)
        item = (entry.k1, entry.k2, entry.seq, b)
        old = self._head.get(b)
        if old is None or item < old:
            self._head[b] = item
            self._push_head(item)
        self._bucket_count[b] += 1
        self._bucket_tokens[b] += entry.req.prompt_tokens

    def bucket_of(self, prompt_tokens: int) -> int:
        assert self.bucket_width is not None
        return prompt_tokens // self.bucket_width

    def bucket_count(self, b: int) -> int:
        return self._bucket_count.get(b, 0)

    def bucket_tokens(self, b: int) -> int:
        return self._bucket_tokens.get(b, 0)

    def bucket_peek(self, b: int) -> Entry | None:
        heap = self._buckets.get(b)
        return heap.peek() if heap is not None else None

    def bucket_pop(self, b: int) -> Entry | None:
        heap = self._buckets.get(b)
        entry = heap.pop() if heap is not None else None
        if entry is not None:
            self._leave(entry, heap)
        return entry

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
        return {f"{b * w}-{(b + 1) * w - 1}": self._bucket_count[b] for b in self._nonempty}
