//! The simulation core: the event queue, the agent table, the delivery loop and the handler context.

use super::digest::Digest;
use super::rng::{SimRng, stream};
use super::time::{SimDuration, SimTime};
use std::any::Any;
use std::collections::BTreeSet;

/// Event classes: at equal time, lower classes are delivered first. Physics changes (class `GRID`) land
/// before the measurements and messages that observe them; reports come last.
pub mod class {
    /// Changes of the physical state (switching, fault onset, profile steps).
    pub const GRID: u8 = 16;
    /// Sensor sampling and protection decisions that observe the physical state.
    pub const SENSE: u8 = 64;
    /// Ordinary messages and timers.
    pub const DEFAULT: u8 = 128;
    /// Periodic reports and statistics.
    pub const REPORT: u8 = 240;
}

/// Most agents one simulation holds (the source id takes 24 bits of the ordering key).
pub const MAX_AGENTS: usize = 1 << 24;
/// Most pending events; beyond it the run stops with [`EngineError::QueueFull`] rather than eat all memory.
pub const DEFAULT_MAX_PENDING: usize = 1 << 28;

/// Index of an agent in its simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct AgentId(pub u32);

impl AgentId {
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Names a scheduled event so it can be cancelled: (source agent, per-source sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u64);

/// A delivered event as an agent's handler sees it.
#[derive(Debug)]
pub struct Event<M> {
    pub time: SimTime,
    pub src: AgentId,
    pub class: u8,
    pub msg: M,
}

/// An active part of the system. Handlers are synchronous and must not block or read a clock.
///
/// `Any` is a supertrait so a finished run can hand its agents back by concrete type
/// ([`Simulation::agent`]) for reporting.
pub trait Agent<M: 'static>: Any {
    /// Called once when the run starts (or when the agent is added to a running simulation), at `ctx.now()`.
    fn start(&mut self, _ctx: &mut Ctx<'_, M>) {}
    /// Handles one event addressed to this agent.
    fn handle(&mut self, event: Event<M>, ctx: &mut Ctx<'_, M>);
    /// A short kind name for logs and reports.
    fn kind(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// When a run stops (whichever comes first). Events at exactly `until` are still delivered.
#[derive(Clone, Copy, Debug)]
pub struct Stop {
    pub until: SimTime,
    pub max_events: u64,
}

impl Stop {
    pub const fn at(until: SimTime) -> Self {
        Stop { until, max_events: u64::MAX }
    }
    pub const fn never() -> Self {
        Stop { until: SimTime::MAX, max_events: u64::MAX }
    }
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("event queue full ({0} pending events): an agent is scheduling without bound")]
    QueueFull(usize),
    #[error("too many agents (limit {MAX_AGENTS})")]
    TooManyAgents,
    #[error("agent {0:?} sent to agent {1} which does not exist")]
    NoSuchAgent(AgentId, u32),
}

/// Counters of a run so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub delivered: u64,
    pub scheduled: u64,
    pub cancelled: u64,
    pub pending: usize,
    pub pending_max: usize,
}

/// Everything about a pending event except its time and message: kept beside the heap's times so that choosing
/// among children reads times only.
#[derive(Clone, Copy)]
struct Side {
    /// class (8 bits) | source (24 bits) | per-source sequence (32 bits).
    order: u64,
    dst: u32,
    /// Index of the message in [`Queue::msgs`].
    slot: u32,
}

/// A delivered entry: its key and its message.
struct Entry<M> {
    time: u64,
    order: u64,
    dst: u32,
    msg: M,
}

/// A pending event outside the current window: its time and the rest of its key.
#[derive(Clone, Copy)]
struct Far {
    time: u64,
    side: Side,
}

/// log2 of the window's width in ns (2^20 ns, about 1 ms): the near heap holds the events of one window.
const WINDOW_SHIFT: u32 = 20;
/// Buckets of the far tier: one per bit a window number can differ in.
const FAR_BUCKETS: usize = (64 - WINDOW_SHIFT) as usize;
/// Capacity (events) a far bucket keeps when a split empties it.
const FAR_KEEP: usize = 4096;

/// The pending events in two tiers, delivered in (time, order) order; a slab holds the messages.
///
/// **Near tier**: the events of the current window (times `window << WINDOW_SHIFT` up to the next window), in a
/// 4-ary min-heap on (time, order) with a deferred pop. The heap is two parallel arrays, `times` (8 bytes per
/// event) and `sides` (order, destination, message slot: 16 bytes). A node's four children's times fill half a
/// cache line, so picking the earliest child reads one line; `sides` is read only on equal times (rare) and for
/// the one entry that moves per level. Why 4-ary: half the depth of a binary heap for about the same number of
/// lines touched per level. Why the deferred pop: a run mostly pops one event and pushes one or more from its
/// handler. `pop` moves the last entry to the root but leaves it unsifted (`root_dirty`); if a push comes first,
/// the new entry takes the root and the moved one goes straight back to the slot it came from, so one sift-down
/// serves both the pop and the push. Otherwise the next look at the top finishes the pop.
///
/// **Far tier**: every later event, in a radix heap over window numbers. Bucket `b` holds the events whose
/// window number differs from the current one first in bit `b`; a push appends to its bucket, and when the near
/// heap runs dry, the lowest non-empty bucket is split: its earliest window becomes the current one, its events
/// of that window go to the near heap and the others to lower buckets. Each event moves down at most
/// `FAR_BUCKETS` times, by sequential reads and appends.
///
/// Why two tiers: a city-sized run keeps 300,000 events pending, most of them timers minutes or hours ahead.
/// In one heap every pop and push walks nine levels whose lower ones lie far apart in memory; here the heap
/// holds about a millisecond of events and stays in cache, and the far events are touched in order.
///
/// Messages live in a slab, written once and read once, so the tiers move small `Copy` values whatever `M`
/// is. (time, order) is unique ((source, sequence) is), so delivery follows that order whatever the layout.
struct Queue<M> {
    times: Vec<u64>,
    sides: Vec<Side>,
    /// Index 0 holds an entry moved there by `pop` and not yet sifted down.
    root_dirty: bool,
    /// The current window's number (time >> `WINDOW_SHIFT`); no pending event is in an earlier one.
    window: u64,
    far: [Vec<Far>; FAR_BUCKETS],
    /// Bit `b` set when `far[b]` is not empty.
    far_mask: u64,
    far_len: usize,
    msgs: Vec<Option<M>>,
    /// Free slots of `msgs`, reused last-freed first (the slot a pop frees is usually the next push's, still
    /// in cache).
    free: Vec<u32>,
}

impl<M> Queue<M> {
    const ARITY: usize = 4;

    fn new() -> Self {
        Queue {
            times: Vec::new(),
            sides: Vec::new(),
            root_dirty: false,
            window: 0,
            far: std::array::from_fn(|_| Vec::new()),
            far_mask: 0,
            far_len: 0,
            msgs: Vec::new(),
            free: Vec::new(),
        }
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.times.len() + self.far_len
    }

    fn reserve(&mut self, n: usize) {
        self.msgs.reserve(n);
    }

    /// Whether the entry at `a` is delivered before the one at `b`.
    #[inline(always)]
    fn before(&self, a: usize, b: usize) -> bool {
        let (ta, tb) = (self.times[a], self.times[b]);
        if ta != tb { ta < tb } else { self.sides[a].order < self.sides[b].order }
    }

    /// Finishes a deferred pop, so index 0 is the earliest entry; refills the near heap from the far tier when
    /// it ran dry.
    #[inline(always)]
    fn settle(&mut self) {
        if self.root_dirty {
            self.root_dirty = false;
            self.sift_down(0);
        }
        if self.times.is_empty() && self.far_len > 0 {
            self.refill();
        }
    }

    /// Splits the lowest non-empty far bucket: its earliest window becomes the current one.
    #[cold]
    fn refill(&mut self) {
        debug_assert!(self.times.is_empty() && !self.root_dirty && self.far_mask != 0);
        let b = self.far_mask.trailing_zeros() as usize;
        let mut bucket = std::mem::take(&mut self.far[b]);
        self.far_mask &= !(1u64 << b);
        self.far_len -= bucket.len();
        let window = bucket.iter().map(|e| e.time >> WINDOW_SHIFT).min().unwrap_or(self.window);
        debug_assert!(window > self.window || bucket.is_empty());
        // Every bucket above `b` keeps its meaning: the new window agrees with the old one above bit `b`.
        self.window = window;
        for e in bucket.drain(..) {
            let w = e.time >> WINDOW_SHIFT;
            if w == window {
                self.times.push(e.time);
                self.sides.push(e.side);
                self.sift_up(self.times.len() - 1);
            } else {
                self.put_far(w, e);
            }
        }
        // An empty bucket keeps room for a few thousand events (the low buckets are split over and over and
        // refill at once); beyond that it gives its memory back, or every bucket would keep the most it ever
        // held, together several times the pending events.
        bucket.shrink_to(FAR_KEEP);
        self.far[b] = bucket;
    }

    /// Makes an earlier window than the current one current, every pending event going back to the far tier.
    /// O(pending); only a push from outside the run can need it.
    #[cold]
    fn rewind(&mut self, window: u64) {
        debug_assert!(window < self.window);
        let mut all: Vec<Far> = Vec::with_capacity(self.len());
        all.extend(self.times.drain(..).zip(self.sides.drain(..)).map(|(time, side)| Far { time, side }));
        for bucket in &mut self.far {
            all.append(bucket);
        }
        self.root_dirty = false;
        self.far_mask = 0;
        self.far_len = 0;
        self.window = window;
        for e in all {
            self.put_far(e.time >> WINDOW_SHIFT, e); // all later than `window`
        }
    }

    /// Appends an event of a later window than the current one to its far bucket.
    #[inline(always)]
    fn put_far(&mut self, window: u64, e: Far) {
        debug_assert!(window > self.window);
        let b = 63 - (window ^ self.window).leading_zeros() as usize;
        self.far[b].push(e);
        self.far_mask |= 1u64 << b;
        self.far_len += 1;
    }

    /// The earliest entry's time.
    #[inline(always)]
    fn peek_time(&mut self) -> Option<u64> {
        self.settle();
        self.times.first().copied()
    }

    /// Removes the earliest entry.
    #[inline(always)]
    fn pop(&mut self) -> Option<Entry<M>> {
        self.settle();
        if self.times.is_empty() {
            return None;
        }
        let time = self.times.swap_remove(0);
        let side = self.sides.swap_remove(0);
        self.root_dirty = self.times.len() > 1;
        let msg = self.msgs[side.slot as usize].take()?; // always Some: each slot is filled once per entry
        self.free.push(side.slot);
        Some(Entry { time, order: side.order, dst: side.dst, msg })
    }

    #[inline(always)]
    fn push(&mut self, time: u64, order: u64, dst: u32, msg: M) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.msgs[s as usize] = Some(msg);
                s
            }
            None => {
                self.msgs.push(Some(msg));
                (self.msgs.len() - 1) as u32
            }
        };
        let side = Side { order, dst, slot };
        let window = time >> WINDOW_SHIFT;
        if window != self.window {
            if window < self.window {
                // Only from outside a handler, between runs: a look at the top moved the window past `now`.
                self.rewind(window);
            } else {
                self.put_far(window, Far { time, side });
                return;
            }
        }
        if self.root_dirty {
            self.root_dirty = false;
            // The unsifted root came from the last slot; put it back there and sift the new entry down from the
            // top. The moved entry is again below the parent it had before the pop: in order, unless that parent
            // is the root, and then the sift-down from the root compares the two anyway.
            let moved_time = std::mem::replace(&mut self.times[0], time);
            let moved_side = std::mem::replace(&mut self.sides[0], side);
            self.times.push(moved_time);
            self.sides.push(moved_side);
            self.sift_down(0);
        } else {
            self.times.push(time);
            self.sides.push(side);
            self.sift_up(self.times.len() - 1);
        }
    }

    /// Moves the entry at `pos` up to its place (entries move into the hole rather than being swapped).
    #[inline(always)]
    fn sift_up(&mut self, mut pos: usize) {
        let (time, side) = (self.times[pos], self.sides[pos]);
        while pos > 0 {
            let parent = (pos - 1) / Self::ARITY;
            let pt = self.times[parent];
            if pt < time || (pt == time && self.sides[parent].order < side.order) {
                break;
            }
            self.times[pos] = pt;
            self.sides[pos] = self.sides[parent];
            pos = parent;
        }
        self.times[pos] = time;
        self.sides[pos] = side;
    }

    /// Moves the entry at `pos` down to its place. The earliest of four children is picked with index
    /// arithmetic rather than branches: which child wins is a coin toss, so branches would be mispredicted half
    /// the time. (The tie test on equal times is a branch, but one that is almost always predicted right.)
    #[inline(always)]
    fn sift_down(&mut self, mut pos: usize) {
        let len = self.times.len();
        let (time, side) = (self.times[pos], self.sides[pos]);
        loop {
            let c = Self::ARITY * pos + 1;
            let best = if c + 3 < len {
                let i01 = c + self.before(c + 1, c) as usize;
                let i23 = c + 2 + self.before(c + 3, c + 2) as usize;
                let take23 = self.before(i23, i01) as usize;
                i01 ^ ((i01 ^ i23) & take23.wrapping_neg())
            } else if c < len {
                let mut best = c;
                for j in c + 1..len {
                    best += (j - best) * self.before(j, best) as usize;
                }
                best
            } else {
                break;
            };
            let bt = self.times[best];
            if bt > time || (bt == time && self.sides[best].order >= side.order) {
                break;
            }
            self.times[pos] = bt;
            self.sides[pos] = self.sides[best];
            pos = best;
        }
        self.times[pos] = time;
        self.sides[pos] = side;
    }
}

/// Everything but the agents: split out so a handler can borrow it while its own agent is borrowed too.
pub struct Core<M> {
    now: SimTime,
    queue: Queue<M>,
    seqs: Vec<u32>,
    cancelled: BTreeSet<u64>,
    digest: Digest,
    stats: RunStats,
    master_seed: u64,
    stop_requested: bool,
    error: Option<EngineError>,
    max_pending: usize,
}

/// What a handler can do: the time, its own id, sending, scheduling, cancelling, randomness, the digest.
pub struct Ctx<'a, M> {
    me: AgentId,
    core: &'a mut Core<M>,
}

impl<M> Ctx<'_, M> {
    /// The current simulation time (the time of the event being handled).
    #[inline(always)]
    pub fn now(&self) -> SimTime {
        self.core.now
    }
    /// This agent's id.
    #[inline(always)]
    pub fn me(&self) -> AgentId {
        self.me
    }
    /// The master seed of the run.
    pub fn master_seed(&self) -> u64 {
        self.core.master_seed
    }
    /// How many agents the simulation holds.
    pub fn agent_count(&self) -> usize {
        self.core.seqs.len()
    }
    /// Sends `msg` to `dst`, delivered `delay` from now with class [`class::DEFAULT`].
    #[inline(always)]
    pub fn send(&mut self, dst: AgentId, delay: SimDuration, msg: M) -> EventId {
        let at = self.core.now.saturating_add(delay);
        self.core.push(self.me, dst, at, class::DEFAULT, msg)
    }
    /// Sends `msg` to `dst` at absolute time `at` (clamped to now: nothing is delivered in the past).
    #[inline(always)]
    pub fn send_at(&mut self, dst: AgentId, at: SimTime, class: u8, msg: M) -> EventId {
        let at = at.max(self.core.now);
        self.core.push(self.me, dst, at, class, msg)
    }
    /// Schedules `msg` to this agent itself after `delay` (a timer).
    #[inline(always)]
    pub fn schedule(&mut self, delay: SimDuration, msg: M) -> EventId {
        let at = self.core.now.saturating_add(delay);
        self.core.push(self.me, self.me, at, class::DEFAULT, msg)
    }
    /// Schedules `msg` to this agent itself at absolute time `at` with a class.
    #[inline(always)]
    pub fn schedule_at(&mut self, at: SimTime, class: u8, msg: M) -> EventId {
        let at = at.max(self.core.now);
        self.core.push(self.me, self.me, at, class, msg)
    }
    /// Cancels a pending event. Cancelling one already delivered or cancelled is a no-op.
    pub fn cancel(&mut self, id: EventId) {
        self.core.cancelled.insert(id.0);
    }
    /// A fresh random stream for (master seed, this agent, `purpose`). Agents normally make their streams
    /// once in [`Agent::start`] and keep them.
    pub fn rng(&self, purpose: &str) -> SimRng {
        stream(self.core.master_seed, self.me.0 as u64, purpose)
    }
    /// Folds an observable output (a decision, a measurement's bits) into the run digest.
    #[inline(always)]
    pub fn digest(&mut self, word: u64) {
        self.core.digest.fold(word);
    }
    /// Asks the run to stop after this event.
    pub fn stop(&mut self) {
        self.core.stop_requested = true;
    }
}

impl<M> Core<M> {
    #[inline(always)]
    fn push(&mut self, src: AgentId, dst: AgentId, at: SimTime, class: u8, msg: M) -> EventId {
        let s = &mut self.seqs[src.index()];
        let seq = *s;
        // Wraps after 2^32 events from one source; only FIFO order among same-time, same-class events from
        // that source could then invert, and deterministically so.
        *s = seq.wrapping_add(1);
        let order = ((class as u64) << 56) | ((src.0 as u64) << 32) | seq as u64;
        if dst.index() >= self.seqs.len() {
            self.fail(EngineError::NoSuchAgent(src, dst.0));
        } else if self.queue.len() >= self.max_pending {
            self.fail(EngineError::QueueFull(self.queue.len()));
        } else {
            self.queue.push(at.0, order, dst.0, msg);
            self.stats.scheduled += 1;
        }
        EventId(order & 0x00FF_FFFF_FFFF_FFFF)
    }
    #[cold]
    fn fail(&mut self, e: EngineError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
        self.stop_requested = true;
    }
}

/// One run: agents plus the queue. Build it, add agents, [`Simulation::run`], then read agents back.
pub struct Simulation<M: 'static> {
    core: Core<M>,
    agents: Vec<Box<dyn Agent<M>>>,
    started: usize,
}

impl<M: 'static> Simulation<M> {
    /// An empty simulation whose random streams derive from `master_seed`.
    pub fn new(master_seed: u64) -> Self {
        Simulation {
            core: Core {
                now: SimTime::ZERO,
                queue: Queue::new(),
                seqs: Vec::new(),
                cancelled: BTreeSet::new(),
                digest: Digest::default(),
                stats: RunStats::default(),
                master_seed,
                stop_requested: false,
                error: None,
                max_pending: DEFAULT_MAX_PENDING,
            },
            agents: Vec::new(),
            started: 0,
        }
    }

    /// Limits the number of pending events (default 2^28).
    pub fn set_max_pending(&mut self, limit: usize) {
        self.core.max_pending = limit.max(1);
    }

    /// Reserves room for `n` pending events (avoids regrowth on big runs).
    pub fn reserve_events(&mut self, n: usize) {
        self.core.queue.reserve(n);
    }

    /// Adds an agent; it starts when the run (re)starts. Ids are dense and assigned in order.
    pub fn add_agent(&mut self, agent: Box<dyn Agent<M>>) -> Result<AgentId, EngineError> {
        if self.agents.len() >= MAX_AGENTS {
            return Err(EngineError::TooManyAgents);
        }
        let id = AgentId(self.agents.len() as u32);
        self.agents.push(agent);
        self.core.seqs.push(0);
        Ok(id)
    }

    /// The id the next added agent will get.
    pub fn next_agent_id(&self) -> AgentId {
        AgentId(self.agents.len() as u32)
    }

    /// Schedules an event from outside any agent (the source is `src`, e.g. the agent itself for an initial timer).
    /// Both agents must exist already.
    pub fn schedule(
        &mut self,
        src: AgentId,
        dst: AgentId,
        at: SimTime,
        class: u8,
        msg: M,
    ) -> Result<EventId, EngineError> {
        if src.index() >= self.agents.len() || dst.index() >= self.agents.len() {
            return Err(EngineError::NoSuchAgent(src, dst.0));
        }
        let at = at.max(self.core.now);
        let id = self.core.push(src, dst, at, class, msg);
        match self.core.error.take() {
            Some(e) => {
                self.core.stop_requested = false;
                Err(e)
            }
            None => Ok(id),
        }
    }

    pub fn now(&self) -> SimTime {
        self.core.now
    }
    pub fn digest(&self) -> Digest {
        self.core.digest
    }
    pub fn stats(&self) -> RunStats {
        RunStats { pending: self.core.queue.len(), ..self.core.stats }
    }
    pub fn master_seed(&self) -> u64 {
        self.core.master_seed
    }
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// The agent `id` as its concrete type, if it is one.
    pub fn agent<T: Agent<M>>(&self, id: AgentId) -> Option<&T> {
        let a: &dyn Any = self.agents.get(id.index())?.as_ref();
        a.downcast_ref::<T>()
    }
    /// Mutable access to agent `id` as its concrete type.
    pub fn agent_mut<T: Agent<M>>(&mut self, id: AgentId) -> Option<&mut T> {
        let a: &mut dyn Any = self.agents.get_mut(id.index())?.as_mut();
        a.downcast_mut::<T>()
    }
    /// Every agent, in id order.
    pub fn agents(&self) -> impl Iterator<Item = (AgentId, &dyn Agent<M>)> {
        self.agents.iter().enumerate().map(|(i, a)| (AgentId(i as u32), a.as_ref()))
    }

    fn start_new_agents(&mut self) {
        while self.started < self.agents.len() {
            let i = self.started;
            self.started += 1;
            let mut ctx = Ctx { me: AgentId(i as u32), core: &mut self.core };
            self.agents[i].start(&mut ctx);
        }
    }

    /// Delivers events until `stop` says so, the queue empties or an agent asks to stop.
    /// Returns the stats. The clock ends at `until` unless the event budget, the predicate or an agent stopped
    /// the run earlier (then it stays at the last delivered event).
    pub fn run(&mut self, stop: Stop) -> Result<RunStats, EngineError> {
        self.run_while(stop, |_| true)
    }

    /// Like [`Simulation::run`], and also stops before an event for which `keep_going(time)` is false.
    pub fn run_while<F: FnMut(SimTime) -> bool>(
        &mut self,
        stop: Stop,
        mut keep_going: F,
    ) -> Result<RunStats, EngineError> {
        self.core.stop_requested = false;
        self.start_new_agents();
        let budget_end = self.core.stats.delivered.saturating_add(stop.max_events);
        let mut ran_dry = true;
        while !self.core.stop_requested {
            let Some(top_time) = self.core.queue.peek_time() else { break };
            if top_time > stop.until.0 {
                break; // the clock advances to `until` below
            }
            if self.core.stats.delivered >= budget_end || !keep_going(SimTime(top_time)) {
                ran_dry = false;
                break;
            }
            let depth = self.core.queue.len();
            if depth > self.core.stats.pending_max {
                self.core.stats.pending_max = depth;
            }
            let Some(Entry { time, order, dst, msg }) = self.core.queue.pop() else { break };
            if !self.core.cancelled.is_empty() && self.core.cancelled.remove(&(order & 0x00FF_FFFF_FFFF_FFFF)) {
                self.core.stats.cancelled += 1;
                continue;
            }
            self.core.now = SimTime(time);
            self.core.digest.fold(time);
            self.core.digest.fold(order ^ ((dst as u64) << 8));
            self.core.stats.delivered += 1;
            let event = Event {
                time: SimTime(time),
                src: AgentId(((order >> 32) & 0xFF_FFFF) as u32),
                class: (order >> 56) as u8,
                msg,
            };
            let mut ctx = Ctx { me: AgentId(dst), core: &mut self.core };
            self.agents[dst as usize].handle(event, &mut ctx);
        }
        if ran_dry && !self.core.stop_requested && stop.until != SimTime::MAX {
            self.core.now = self.core.now.max(stop.until);
        }
        if let Some(e) = self.core.error.take() {
            return Err(e);
        }
        Ok(self.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it receives; on start, sends `fanout` messages to the next agent at equal times.
    struct Echo {
        seen: Vec<(u64, u32, u8, u32)>,
        fanout: u32,
    }
    impl Agent<u32> for Echo {
        fn start(&mut self, ctx: &mut Ctx<'_, u32>) {
            let next = AgentId((ctx.me().0 + 1) % ctx.agent_count() as u32);
            for k in 0..self.fanout {
                ctx.send_at(next, SimTime(10), if k % 2 == 0 { class::DEFAULT } else { class::GRID }, k);
            }
        }
        fn handle(&mut self, e: Event<u32>, ctx: &mut Ctx<'_, u32>) {
            self.seen.push((e.time.0, e.src.0, e.class, e.msg));
            if e.msg == 1000 {
                ctx.stop();
            }
        }
    }

    struct Bad;
    impl Agent<u32> for Bad {
        fn handle(&mut self, _: Event<u32>, ctx: &mut Ctx<'_, u32>) {
            ctx.send(AgentId(9), SimDuration::ZERO, 0);
        }
    }

    fn two(fanout: u32) -> Simulation<u32> {
        let mut sim = Simulation::new(1);
        for _ in 0..2 {
            sim.add_agent(Box::new(Echo { seen: vec![], fanout })).unwrap();
        }
        sim
    }

    #[test]
    fn delivers_in_time_class_source_sequence_order() {
        let mut sim = two(4);
        sim.run(Stop::never()).unwrap();
        let a: &Echo = sim.agent(AgentId(1)).unwrap();
        // From agent 0: GRID class (k = 1, 3) before DEFAULT (k = 0, 2), each in send order.
        assert_eq!(a.seen.iter().map(|s| s.3).collect::<Vec<_>>(), vec![1, 3, 0, 2]);
        assert_eq!(sim.stats().delivered, 8);
    }

    #[test]
    fn cancel_stop_and_until() {
        let mut sim = two(0);
        let e1 = sim.schedule(AgentId(0), AgentId(1), SimTime(5), class::DEFAULT, 7).unwrap();
        sim.schedule(AgentId(0), AgentId(1), SimTime(6), class::DEFAULT, 8).unwrap();
        sim.schedule(AgentId(0), AgentId(1), SimTime(20), class::DEFAULT, 9).unwrap();
        sim.core.cancelled.insert(e1.0);
        let st = sim.run(Stop::at(SimTime(10))).unwrap();
        assert_eq!((st.delivered, st.cancelled, st.pending), (1, 1, 1));
        assert_eq!(sim.now(), SimTime(10));
        sim.schedule(AgentId(0), AgentId(1), SimTime(15), class::DEFAULT, 1000).unwrap();
        sim.run(Stop::never()).unwrap();
        assert_eq!(sim.now(), SimTime(15), "stop() halts before the event at 20");
        assert_eq!(sim.agent::<Echo>(AgentId(1)).unwrap().seen.len(), 2);
    }

    #[test]
    fn bad_destination_and_queue_limit_are_errors() {
        let mut sim = two(0);
        assert_eq!(
            sim.schedule(AgentId(0), AgentId(9), SimTime(1), class::DEFAULT, 1),
            Err(EngineError::NoSuchAgent(AgentId(0), 9))
        );
        sim.add_agent(Box::new(Bad)).unwrap();
        sim.schedule(AgentId(2), AgentId(2), SimTime(1), class::DEFAULT, 1).unwrap();
        assert_eq!(sim.run(Stop::never()), Err(EngineError::NoSuchAgent(AgentId(2), 9)));
        let mut sim = two(100);
        sim.set_max_pending(10);
        assert!(matches!(sim.run(Stop::never()), Err(EngineError::QueueFull(_))));
    }

    /// A xorshift64 stream for the queue tests.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// Pops the queue and the sorted oracle once and asserts they agree (the top's time, then the entry);
    /// returns the popped time.
    fn pop_as_oracle(q: &mut Queue<u64>, oracle: &mut std::collections::BTreeMap<(u64, u64), u64>) -> Option<u64> {
        let want = oracle.pop_first();
        assert_eq!(q.peek_time(), want.map(|((t, _), _)| t));
        let got = q.pop().map(|e| ((e.time, e.order), e.msg));
        assert_eq!(got, want);
        got.map(|((t, _), _)| t)
    }

    /// The queue against a sorted oracle: random pushes and pops (hold-like runs, bursts, drains), with many
    /// equal times so the class/source/sequence tie-breaks and every partial child group are exercised.
    #[test]
    fn queue_pops_in_key_order_under_random_pushes_and_pops() {
        let mut next = xorshift(0x1234_5678_9abc_def1);
        for round in 0..20 {
            let mut q: Queue<u64> = Queue::new();
            let mut oracle = std::collections::BTreeMap::new();
            let mut now = 0u64;
            let mut seq = 0u64;
            for _ in 0..3_000 {
                let pushes = match next() % 8 {
                    0 => 0,
                    1 => 3,
                    _ => 1,
                };
                for _ in 0..pushes {
                    let time = now + next() % (1 + round * 3);
                    let order = ((next() % 3) << 56) | ((next() % 5) << 32) | seq;
                    seq += 1;
                    q.push(time, order, (seq % 7) as u32, seq);
                    oracle.insert((time, order), seq);
                }
                if !next().is_multiple_of(3) {
                    now = pop_as_oracle(&mut q, &mut oracle).unwrap_or(now);
                }
                assert_eq!(q.len(), oracle.len());
            }
            while pop_as_oracle(&mut q, &mut oracle).is_some() {}
            assert!(q.pop().is_none());
        }
    }

    /// A look at the top with nothing left in the current window moves the window to the next event, hours
    /// ahead; an event then scheduled from outside at `now` still comes first.
    #[test]
    fn queue_takes_an_earlier_event_after_a_look_moved_the_window_ahead() {
        let mut q: Queue<u32> = Queue::new();
        let hours = 3_600_000_000_000 * 5;
        q.push(10, 1, 0, 1);
        q.push(hours, 2, 0, 2);
        assert_eq!(q.pop().map(|e| e.msg), Some(1));
        assert_eq!(q.peek_time(), Some(hours));
        assert_eq!(q.window, hours >> WINDOW_SHIFT);
        q.push(10, 3, 0, 3);
        q.push(hours - 1, 4, 0, 4);
        assert_eq!(q.peek_time(), Some(10));
        let order: Vec<u32> = std::iter::from_fn(|| q.pop().map(|e| e.msg)).collect();
        assert_eq!(order, [3, 4, 2]);
    }

    /// The two tiers against a sorted oracle: delays from 0 ns to hours (so events land in every far bucket and
    /// move down through them), bursts at equal times, and pushes from outside a run after a look at the top
    /// moved the window ahead (`rewind`).
    #[test]
    fn queue_matches_oracle_across_windows_and_rewinds() {
        let mut next = xorshift(0x0ddc_0ffe_e15e_a5e5);
        for _round in 0..10 {
            let mut q: Queue<u64> = Queue::new();
            let mut oracle = std::collections::BTreeMap::new();
            let mut now = 0u64;
            let mut seq = 0u64;
            for _ in 0..5_000 {
                let pushes = [0, 1, 1, 2, 5][(next() % 5) as usize];
                for _ in 0..pushes {
                    let delay = match next() % 4 {
                        0 => 0,
                        1 => next() % (1 << WINDOW_SHIFT),
                        _ => next() % (1u64 << (next() % 44)),
                    };
                    let order = ((next() % 3) << 56) | ((next() % 5) << 32) | seq;
                    seq += 1;
                    q.push(now + delay, order, 0, seq);
                    oracle.insert((now + delay, order), seq);
                }
                match next() % 10 {
                    0 => {
                        // Between runs: look at the top (it may move the window ahead), then schedule at `now`.
                        assert_eq!(q.peek_time(), oracle.first_key_value().map(|((t, _), _)| *t));
                        let order = (3 << 56) | seq;
                        seq += 1;
                        q.push(now, order, 0, seq);
                        oracle.insert((now, order), seq);
                    }
                    1..=6 => now = pop_as_oracle(&mut q, &mut oracle).unwrap_or(now),
                    _ => {}
                }
                assert_eq!(q.len(), oracle.len());
            }
            while pop_as_oracle(&mut q, &mut oracle).is_some() {}
            assert!(q.pop().is_none() && q.len() == 0 && q.far_mask == 0);
        }
    }

    #[test]
    fn digest_depends_on_order_and_is_reproducible() {
        let run = |f| {
            let mut s = two(f);
            s.run(Stop::never()).unwrap();
            s.digest()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
