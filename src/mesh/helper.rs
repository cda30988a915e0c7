//! A helper thread that weighs part of a broadcast's receivers while the mesh agent's thread weighs the rest.
//!
//! A broadcast in a dense mesh reaches a few hundred neighbours, and weighing the frame at each of them
//! ([`LinkModel::weigh`]: capture, interference from the frames overlapping it, the error model) is a third or
//! more of a city's run. Each weighing reads only the [`LinkModel`], which no event changes while frames are
//! weighed, and the frame's overlaps, so two threads can share them. What a weighing leads to (the PHY's
//! random draw, counters, deliveries) stays with the agent's thread, in the receivers' order: every output is
//! the same with and without the helper, bit for bit.
//!
//! How: the agent publishes a [`Job`] (the frame, its overlaps and receivers) and both threads claim chunks of
//! receivers from one atomic cursor that also carries the job's generation, so a helper late for one job can
//! never claim a chunk of the next. The agent's thread then waits a little ([`WAIT_LIMIT`]) for chunks the
//! helper claimed and weighs any it has not handed in itself, so a helper the system has descheduled costs a
//! chunk, not a time slice. A helper asleep when a job comes (it parks after spinning [`SPIN_LIMIT`] rounds
//! without work) costs nothing: the agent's thread claims every chunk itself.
//!
//! Why not rayon: a broadcast's weighing takes tens of microseconds, and handing each one to a pool whose
//! workers have gone to sleep since the previous broadcast cost more than it saved (measured in
//! `docs/benchmarks.md`); this helper spins between broadcasts instead, on a core the run would leave idle.

use super::channel::OnAir;
use super::links::{LinkModel, Weighed};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// Receivers per chunk: a chunk is a few microseconds of work, so the cursor's traffic between the two cores is
/// small beside it, and a broadcast to a few hundred neighbours still splits evenly.
pub(crate) const CHUNK: usize = 16;

/// Spin rounds without work after which the helper parks (a millisecond or so, as long as the processor's
/// pause instruction takes): broadcasts in a busy mesh come closer than that, and an idle mesh does not keep
/// a core busy.
const SPIN_LIMIT: u32 = 1 << 16;

/// One broadcast to weigh: the frame, the frames overlapping it (in id order) and its receivers (node index,
/// power at it in dBm), in the order their outcomes are applied.
#[derive(Debug)]
pub(crate) struct Job {
    generation: u64,
    links: Arc<LinkModel>,
    pub(crate) frame: OnAir,
    pub(crate) overlaps: Vec<OnAir>,
    pub(crate) receivers: Vec<(u32, f64)>,
}

impl Job {
    fn chunks(&self) -> u64 {
        self.receivers.len().div_ceil(CHUNK) as u64
    }

    /// Weighs chunk `k` into `out` (cleared first).
    fn weigh_chunk(&self, k: u64, out: &mut Vec<Weighed>, ints: &mut Vec<super::phy::Interferer>) {
        out.clear();
        let lo = k as usize * CHUNK;
        let hi = (lo + CHUNK).min(self.receivers.len());
        for &(r, p_dbm) in &self.receivers[lo..hi] {
            out.push(self.links.weigh(&self.frame, r as usize, p_dbm, &self.overlaps, ints));
        }
    }
}

/// What the two threads share.
#[derive(Debug, Default)]
struct Shared {
    /// The job being weighed (set before the cursor announces its generation).
    job: Mutex<Option<Arc<Job>>>,
    /// The job's generation (high 32 bits) and the next chunk to claim (low 32 bits).
    cursor: AtomicU64,
    /// Outcomes of the chunks the helper weighed for the current job.
    out: Mutex<Outcomes>,
    /// The generation (high 32 bits) and the number of chunks the helper finished of it (low 32 bits).
    done: AtomicU64,
    /// Tests: the helper sleeps this long (µs) before handing in each chunk, so the agent takes chunks over.
    #[cfg(test)]
    late_us: std::sync::atomic::AtomicU32,
    /// The helper is parked or about to park: a new job must unpark it.
    sleeping: AtomicBool,
    quit: AtomicBool,
}

/// The helper's outcomes of one job: by receiver, with which chunks are in. A helper late for a job (its
/// chunks taken over by the agent, which has moved on) finds another generation here and drops its work.
#[derive(Debug, Default)]
struct Outcomes {
    generation: u64,
    by_receiver: Vec<Weighed>,
    chunk_in: Vec<bool>,
}

/// Spin rounds the agent waits for a chunk the helper claimed before weighing it itself (a few microseconds,
/// a chunk's work): a helper descheduled by the system, on a machine busy with other work, then costs a
/// chunk's time instead of a time slice.
const WAIT_LIMIT: u32 = 1 << 13;

/// Locks `m`, ignoring poisoning: a panic on the other thread is reported when it is joined, and the data
/// behind these locks (buffers of outcomes) is rewritten before every read.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Claims the next chunk of generation `generation`, if any is left of its `chunks`.
fn claim(cursor: &AtomicU64, generation: u64, chunks: u64) -> Option<u64> {
    let mut c = cursor.load(Ordering::Acquire);
    loop {
        if c >> 32 != generation || c & 0xFFFF_FFFF >= chunks {
            return None;
        }
        match cursor.compare_exchange_weak(c, c + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(c & 0xFFFF_FFFF),
            Err(now) => c = now,
        }
    }
}

/// The helper thread and its end of the shared state; see the module docs.
#[derive(Debug)]
pub(crate) struct Helper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The last job's generation (1 to 2^32 - 1, wrapping), which also counts the broadcasts weighed.
    pub(crate) generation: u64,
    /// The last job, kept to reuse its buffers once the helper has let go of it.
    spare: Option<Arc<Job>>,
    /// Outcomes by receiver, ours and (copied in) the helper's.
    mine: Vec<Weighed>,
    /// Which chunks we weighed ourselves.
    ours: Vec<bool>,
    buf: Vec<Weighed>,
    ints: Vec<super::phy::Interferer>,
    /// Chunks the helper claimed but the agent weighed, having waited long enough.
    pub(crate) taken_over: u64,
}

impl Helper {
    /// Starts the helper thread; `None` if the system refuses a thread (the agent then weighs alone).
    pub(crate) fn start() -> Option<Helper> {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("mesh-weigher".into()).spawn(move || run(&theirs)).ok()?;
        Some(Helper {
            shared,
            thread: Some(thread),
            generation: 0,
            spare: None,
            mine: Vec::new(),
            ours: Vec::new(),
            buf: Vec::with_capacity(CHUNK),
            ints: Vec::new(),
            taken_over: 0,
        })
    }

    /// Weighs `frame` at `receivers` (node index, power at it, dBm) against `overlaps` with the helper's help,
    /// runs `meanwhile` on the receivers once the helper can start, and calls `apply` with each receiver's
    /// outcome in the receivers' order. The buffers come back holding
    /// an earlier job's contents, for reuse: callers clear them before filling them.
    pub(crate) fn weigh(
        &mut self,
        links: &Arc<LinkModel>,
        frame: OnAir,
        overlaps: &mut Vec<OnAir>,
        receivers: &mut Vec<(u32, f64)>,
        meanwhile: impl FnOnce(&[(u32, f64)]),
        mut apply: impl FnMut(u32, Weighed),
    ) {
        // Generations count 1 to 2^32 - 1 and wrap (0 is the helper's "none seen yet").
        self.generation = (self.generation % 0xFFFF_FFFF) + 1;
        let generation = self.generation;
        // The previous job's buffers, if the helper has let go of it (it has, unless it is still between
        // reading the job and finding no chunk left).
        let job = match self.spare.take().map(Arc::try_unwrap) {
            Some(Ok(mut j)) => {
                j.generation = generation;
                j.links = Arc::clone(links);
                j.frame = frame;
                std::mem::swap(&mut j.overlaps, overlaps);
                std::mem::swap(&mut j.receivers, receivers);
                j
            }
            _ => Job {
                generation,
                links: Arc::clone(links),
                frame,
                overlaps: std::mem::take(overlaps),
                receivers: std::mem::take(receivers),
            },
        };
        let job = Arc::new(job);
        let chunks = job.chunks();
        assert!(chunks < 1 << 31, "a broadcast to {} receivers", job.receivers.len());
        {
            let mut out = lock(&self.shared.out);
            out.generation = generation;
            out.by_receiver.clear();
            out.by_receiver.resize(job.receivers.len(), Weighed::Below);
            out.chunk_in.clear();
            out.chunk_in.resize(chunks as usize, false);
        }
        *lock(&self.shared.job) = Some(Arc::clone(&job));
        self.shared.cursor.store(generation << 32, Ordering::SeqCst);
        if self.shared.sleeping.load(Ordering::SeqCst)
            && let Some(t) = &self.thread
        {
            t.thread().unpark();
        }
        // Work of the caller's that needs no outcome, done while the helper starts on the first chunks.
        meanwhile(&job.receivers);
        // Our share: every chunk the helper has not claimed first.
        self.mine.clear();
        self.mine.resize(job.receivers.len(), Weighed::Below);
        self.ours.clear();
        self.ours.resize(chunks as usize, false);
        let mut ours = 0u64;
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(k) = claim(&self.shared.cursor, generation, chunks) {
            job.weigh_chunk(k, &mut buf, &mut self.ints);
            let lo = k as usize * CHUNK;
            self.mine[lo..lo + buf.len()].copy_from_slice(&buf);
            self.ours[k as usize] = true;
            ours += 1;
        }
        self.buf = buf;
        let theirs = chunks - ours;
        if theirs > 0 {
            self.wait_for(generation << 32 | theirs);
            let mut out = lock(&self.shared.out);
            // Whatever the helper has not handed in yet is weighed here (the same arithmetic, so the same
            // outcome); the generation is retired so its late results are dropped.
            out.generation = 0;
            for k in 0..chunks as usize {
                if self.ours[k] {
                    continue;
                }
                let lo = k * CHUNK;
                let hi = (lo + CHUNK).min(job.receivers.len());
                if out.chunk_in[k] {
                    self.mine[lo..hi].copy_from_slice(&out.by_receiver[lo..hi]);
                } else {
                    job.weigh_chunk(k as u64, &mut self.buf, &mut self.ints);
                    self.mine[lo..hi].copy_from_slice(&self.buf);
                    self.taken_over += 1;
                }
            }
        }
        for (&(r, _), &w) in job.receivers.iter().zip(&self.mine) {
            apply(r, w);
        }
        // The job's buffers go back to the caller once the helper has let go of the job.
        lock(&self.shared.job).take();
        self.spare = Some(job);
    }

    /// Waits, at most [`WAIT_LIMIT`] spin rounds, until the helper has finished the chunks it claimed (`done` as
    /// [`Shared::done`] counts them).
    fn wait_for(&self, done: u64) {
        for _ in 0..WAIT_LIMIT {
            if self.shared.done.load(Ordering::Acquire) == done {
                return;
            }
            std::hint::spin_loop();
        }
    }
}

/// The helper's loop: waits for a job (spinning, then parked), weighs the chunks it claims, repeats.
fn run(shared: &Shared) {
    let mut seen = 0u64;
    let mut spins = 0u32;
    let mut buf = Vec::with_capacity(CHUNK);
    let mut ints = Vec::new();
    loop {
        if shared.quit.load(Ordering::Acquire) {
            return;
        }
        let generation = shared.cursor.load(Ordering::Acquire) >> 32;
        if generation != seen {
            seen = generation;
            spins = 0;
            let job = lock(&shared.job).clone();
            let Some(job) = job.filter(|j| j.generation == generation) else { continue };
            let chunks = job.chunks();
            let mut finished = 0u64;
            while let Some(k) = claim(&shared.cursor, generation, chunks) {
                job.weigh_chunk(k, &mut buf, &mut ints);
                let lo = k as usize * CHUNK;
                #[cfg(test)]
                std::thread::sleep(std::time::Duration::from_micros(shared.late_us.load(Ordering::Relaxed) as u64));
                let mut out = lock(&shared.out);
                if out.generation != generation {
                    // Taken over by the agent, which has moved on.
                    break;
                }
                out.by_receiver[lo..lo + buf.len()].copy_from_slice(&buf);
                out.chunk_in[k as usize] = true;
                drop(out);
                finished += 1;
                shared.done.store(generation << 32 | finished, Ordering::Release);
            }
            continue;
        }
        if spins < SPIN_LIMIT {
            spins += 1;
            std::hint::spin_loop();
            continue;
        }
        // Park; the agent unparks a sleeping helper after announcing a job, and the check after raising the
        // flag closes the window where the announcement came between the last look and the flag.
        shared.sleeping.store(true, Ordering::SeqCst);
        if shared.cursor.load(Ordering::SeqCst) >> 32 == seen && !shared.quit.load(Ordering::SeqCst) {
            std::thread::park();
        }
        shared.sleeping.store(false, Ordering::SeqCst);
        spins = 0;
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            // A panic on the helper is a bug in the weighing; it surfaces here rather than being lost.
            if t.join().is_err() && !std::thread::panicking() {
                panic!("the mesh's weighing helper panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{SimTime, Simulation, Stop};
    use crate::mesh::build::bound_tests::{grid_mesh, sun_fsk_radio};
    use crate::mesh::config::{MeshConfig, Traffic};
    use crate::mesh::{MeshAgent, build};

    /// What one run gives: the engine's digest, the flows and every node's receiver counters; and how many
    /// broadcasts the helper shared and how many of its chunks the agent took over.
    struct Run {
        outputs: (String, String, String),
        broadcasts: u64,
        taken_over: u64,
    }

    /// One run of a dense mesh (every node hears about 80 others, so every broadcast is weighed in chunks)
    /// through its formation, without the helper (`late_us` `None`) or with one that sleeps `late_us` µs before
    /// handing in each chunk.
    fn run(seed: u64, late_us: Option<u32>, shadowing_db: f64) -> Run {
        let radio = sun_fsk_radio();
        let mut sim = Simulation::new(seed);
        let cfg = MeshConfig {
            traffic: Traffic { report_every: Some("2min".into()), ..Traffic::default() },
            ..grid_mesh(400, 120.0, shadowing_db)
        };
        let h = build(&mut sim, &cfg, &radio, &[], &[]).unwrap();
        let m = sim.agent_mut::<MeshAgent>(h.agent()).unwrap();
        let dense = m.nodes.iter().filter(|n| n.nbrs.len() >= crate::mesh::medium::HELPED).count();
        assert!(dense > 300, "{dense} nodes with enough neighbours for the helper");
        if let Some(late_us) = late_us {
            m.start_helper();
            let h = m.helper.as_ref().expect("the helper thread started");
            h.shared.late_us.store(late_us, Ordering::Relaxed);
        }
        sim.run(Stop::at(SimTime::from_secs(600))).unwrap();
        let m = h.mesh(&sim).unwrap();
        let (broadcasts, taken_over) = m.helper.as_ref().map_or((0, 0), |h| (h.generation, h.taken_over));
        Run { outputs: (sim.digest().hex(), format!("{:?}", m.flows), format!("{:?}", m.rx)), broadcasts, taken_over }
    }

    /// The helper changes nothing: the same events, flows and counters as the agent weighing alone, at three
    /// seeds and shadowing spreads.
    #[test]
    fn a_helped_run_is_bit_identical_to_one_without() {
        for (seed, shadowing_db) in [(1u64, 4.0), (2, 8.0), (3, 0.0)] {
            let alone = run(seed, None, shadowing_db);
            let helped = run(seed, Some(0), shadowing_db);
            assert_eq!(alone.broadcasts, 0);
            assert!(helped.broadcasts > 100, "seed {seed}: {} broadcasts weighed with the helper", helped.broadcasts);
            assert_eq!(alone.outputs, helped.outputs, "seed {seed}: digest, flows, receiver counters");
        }
    }

    /// A helper too slow to hand its chunks in (as one the system has descheduled) has them taken over by the
    /// agent, which weighs them itself, and its late results are dropped: the run is still the same.
    #[test]
    fn chunks_a_late_helper_claimed_are_taken_over_and_the_run_is_the_same() {
        let alone = run(4, None, 4.0);
        let late = run(4, Some(2_000), 4.0);
        assert!(late.taken_over > 10, "{} chunks taken over", late.taken_over);
        assert_eq!(alone.outputs, late.outputs, "digest, flows, receiver counters");
    }

    /// Claims carry the job's generation: a claim for another generation, or past the last chunk, fails.
    #[test]
    fn claims_are_bounded_by_generation_and_chunks() {
        let cursor = AtomicU64::new(7 << 32);
        assert_eq!(claim(&cursor, 7, 2), Some(0));
        assert_eq!(claim(&cursor, 7, 2), Some(1));
        assert_eq!(claim(&cursor, 7, 2), None);
        assert_eq!(claim(&cursor, 6, 9), None, "an old generation claims nothing");
        cursor.store(8 << 32, Ordering::SeqCst);
        assert_eq!(claim(&cursor, 7, 9), None);
        assert_eq!(claim(&cursor, 8, 1), Some(0));
    }
}
