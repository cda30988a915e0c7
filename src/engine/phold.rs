//! PHOLD-ns: the engine's speed benchmark and exact correctness oracle.
//!
//! N logical processes (LPs), each an [`Agent`] with its own SplitMix64 stream; every event schedules one more
//! at a random LP after `L_NS + Exp(MEAN_NS)` nanoseconds. The variant is defined so every correct
//! time-ordered engine produces exactly the same event count and checksum (sum of delivery times), whatever
//! its tie-breaking. [`run_engine`] drives it through the real engine and agent API; [`run_reference`] is a
//! straightforward `BinaryHeap` loop used as the oracle in tests.

use super::{Agent, AgentId, Ctx, Event, SimTime, Simulation, Stop, class};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One PHOLD configuration (all times in nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PholdConfig {
    pub lps: u32,
    pub events_per_lp: u32,
    pub seed: u64,
    pub lookahead_ns: u64,
    pub mean_ns: u64,
    pub end_ns: u64,
}

impl PholdConfig {
    /// Config A of the reference table.
    pub const A: PholdConfig = PholdConfig {
        lps: 1024,
        events_per_lp: 16,
        seed: 42,
        lookahead_ns: 100_000_000,
        mean_ns: 900_000_000,
        end_ns: 200_000_000_000,
    };
    /// Config A-short: A up to 20 s.
    pub const A_SHORT: PholdConfig = PholdConfig { end_ns: 20_000_000_000, ..PholdConfig::A };
    /// Config B: A up to 2000 s.
    pub const B: PholdConfig = PholdConfig { end_ns: 2_000_000_000_000, ..PholdConfig::A };
    /// Config C: 16 LPs with 1024 initial events each, up to 200 s.
    pub const C: PholdConfig = PholdConfig { lps: 16, events_per_lp: 1024, ..PholdConfig::A };
    /// Not in the reference table: 20,000 LPs with 16 initial events each, up to 10 s, so 320,000 events
    /// are pending at any time, as many as a city-sized mesh run keeps. The benchmarks check it against
    /// [`run_reference`].
    pub const CITY_PENDING: PholdConfig = PholdConfig { lps: 20_000, end_ns: 10_000_000_000, ..PholdConfig::A };
}

/// The reference table (name, configuration, expected result) every correct engine reproduces exactly.
pub const REFERENCE: [(&str, PholdConfig, PholdResult); 4] = [
    ("A", PholdConfig::A, PholdResult { events: 3_259_590, checksum: 0x0484_a4d8_eb86_3716 }),
    ("A-short", PholdConfig::A_SHORT, PholdResult { events: 323_005, checksum: 0x000b_8472_532a_84d5 }),
    ("B", PholdConfig::B, PholdResult { events: 32_804_471, checksum: 0xc780_6c0f_0a75_3dd3 }),
    ("C", PholdConfig::C, PholdResult { events: 3_272_494, checksum: 0x048a_c344_7c25_ac25 }),
];

/// Events handled and the checksum (wrapping sum of their times).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PholdResult {
    pub events: u64,
    pub checksum: u64,
}

impl PholdResult {
    pub fn checksum_hex(&self) -> String {
        format!("{:016x}", self.checksum)
    }
}

/// SplitMix64 as the reference defines it.
#[derive(Clone, Copy, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn for_lp(seed: u64, lp: u32) -> Self {
        SplitMix64(seed ^ (lp as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
    #[inline(always)]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    #[inline(always)]
    fn delay(&mut self, lookahead_ns: u64, mean_ns: f64) -> u64 {
        let u = ((self.next() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
        lookahead_ns.wrapping_add((-mean_ns * u.ln()) as u64)
    }
    #[inline(always)]
    fn dest(&mut self, lps: u32) -> u32 {
        ((self.next() as u128 * lps as u128) >> 64) as u32
    }
}

/// One logical process as an engine agent. Its message is empty: the event itself is the token.
struct Lp {
    rng: SplitMix64,
    lps: u32,
    lookahead_ns: u64,
    mean_ns: f64,
    count: u64,
    checksum: u64,
}

impl Agent<()> for Lp {
    #[inline]
    fn handle(&mut self, e: Event<()>, ctx: &mut Ctx<'_, ()>) {
        self.count += 1;
        self.checksum = self.checksum.wrapping_add(e.time.0);
        let dest = self.rng.dest(self.lps);
        let d = self.rng.delay(self.lookahead_ns, self.mean_ns);
        ctx.send_at(AgentId(dest), SimTime(e.time.0.wrapping_add(d)), class::DEFAULT, ());
    }
    fn kind(&self) -> &'static str {
        "phold-lp"
    }
}

/// Builds the PHOLD model as a [`Simulation`] with its initial events scheduled.
pub fn build(cfg: &PholdConfig) -> Result<Simulation<()>, super::EngineError> {
    let mut sim = Simulation::new(cfg.seed);
    sim.reserve_events(cfg.lps as usize * cfg.events_per_lp as usize + 16);
    for i in 0..cfg.lps {
        let mut rng = SplitMix64::for_lp(cfg.seed, i);
        let mean = cfg.mean_ns as f64;
        let first: Vec<u64> = (0..cfg.events_per_lp).map(|_| rng.delay(cfg.lookahead_ns, mean)).collect();
        let lp = Lp { rng, lps: cfg.lps, lookahead_ns: cfg.lookahead_ns, mean_ns: mean, count: 0, checksum: 0 };
        let id = sim.add_agent(Box::new(lp))?;
        for d in first {
            sim.schedule(id, id, SimTime(d), class::DEFAULT, ())?;
        }
    }
    Ok(sim)
}

/// Collects count and checksum from a finished PHOLD simulation.
pub fn collect(sim: &Simulation<()>, cfg: &PholdConfig) -> PholdResult {
    let mut r = PholdResult { events: 0, checksum: 0 };
    for i in 0..cfg.lps {
        let lp: &Lp = sim.agent(AgentId(i)).expect("every agent of a PHOLD run is an LP");
        r.events += lp.count;
        r.checksum = r.checksum.wrapping_add(lp.checksum);
    }
    r
}

/// Runs PHOLD through the engine. Errors if the configuration is out of range.
pub fn run_engine(cfg: &PholdConfig) -> Result<PholdResult, String> {
    validate(cfg)?;
    let mut sim = build(cfg).map_err(|e| e.to_string())?;
    sim.run(Stop::at(SimTime(cfg.end_ns))).map_err(|e| e.to_string())?;
    Ok(collect(&sim, cfg))
}

/// Checks the configuration is something the engine can run.
pub fn validate(cfg: &PholdConfig) -> Result<(), String> {
    if cfg.lps == 0 || cfg.lps as usize > super::MAX_AGENTS {
        return Err(format!("--lps {} is out of range (1..={})", cfg.lps, super::MAX_AGENTS));
    }
    if (cfg.lps as u64) * (cfg.events_per_lp as u64) > super::sim::DEFAULT_MAX_PENDING as u64 {
        return Err(format!(
            "--lps x --events-per-lp = {} initial events exceeds the queue limit",
            cfg.lps as u64 * cfg.events_per_lp as u64
        ));
    }
    Ok(())
}

/// The oracle: a plain `BinaryHeap<Reverse<(t, seq, lp)>>` loop with no engine at all.
pub fn run_reference(cfg: &PholdConfig) -> PholdResult {
    let mean = cfg.mean_ns as f64;
    let mut rngs: Vec<SplitMix64> = (0..cfg.lps).map(|i| SplitMix64::for_lp(cfg.seed, i)).collect();
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    for (i, rng) in rngs.iter_mut().enumerate() {
        for _ in 0..cfg.events_per_lp {
            heap.push(Reverse((rng.delay(cfg.lookahead_ns, mean), seq, i as u32)));
            seq += 1;
        }
    }
    let mut r = PholdResult { events: 0, checksum: 0 };
    while let Some(Reverse((t, _, lp))) = heap.pop() {
        if t > cfg.end_ns {
            break;
        }
        r.events += 1;
        r.checksum = r.checksum.wrapping_add(t);
        let rng = &mut rngs[lp as usize];
        let dest = rng.dest(cfg.lps);
        let d = rng.delay(cfg.lookahead_ns, mean);
        heap.push(Reverse((t.wrapping_add(d), seq, dest)));
        seq += 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(name: &str) -> (PholdConfig, PholdResult) {
        let (_, cfg, r) = REFERENCE.iter().find(|(n, _, _)| *n == name).expect("a config of the table");
        (*cfg, *r)
    }

    #[test]
    fn a_short_a_and_c_match_the_reference_table() {
        // B (33 M events) is too slow for a debug build; `gridtwin bench phold` checks it in release.
        for name in ["A-short", "A", "C"] {
            let (cfg, want) = expected(name);
            let got = run_engine(&cfg).unwrap();
            assert_eq!(got, want, "config {name}: engine gave {} events, checksum {}", got.events, got.checksum_hex());
        }
        assert_eq!(run_reference(&PholdConfig::A_SHORT), expected("A-short").1, "the oracle itself");
        assert_eq!(expected("A-short").1.checksum_hex(), "000b8472532a84d5");
    }

    /// 320,000 events pending, spread over seconds: the queue's far tier splits its buckets many times over.
    #[test]
    fn city_pending_matches_the_reference_loop() {
        let cfg = PholdConfig { end_ns: 1_500_000_000, ..PholdConfig::CITY_PENDING };
        let want = run_reference(&cfg);
        assert!(want.events > 300_000, "{} events", want.events);
        assert_eq!(run_engine(&cfg).unwrap(), want);
    }

    /// Random configurations, including edge cases (one LP, no initial events, zero lookahead, zero mean,
    /// end at zero), through the engine and through the bare-heap oracle: exactly equal results.
    #[test]
    fn random_configs_match_the_reference_loop() {
        let mut g = SplitMix64(0x00C0_FFEE_D15C_0DE5);
        let mut nonempty = 0;
        for case in 0..40 {
            let lps = 1 + (g.next() % 64) as u32;
            let events_per_lp = (g.next() % 9) as u32;
            let lookahead_ns = match g.next() % 4 {
                0 => 0,
                1 => 1 + g.next() % 1_000,
                _ => g.next() % 200_000_000,
            };
            let mean_ns = match g.next() % 5 {
                0 if lookahead_ns > 0 => 0,
                1 => 1 + g.next() % 100,
                _ => 1_000 + g.next() % 2_000_000_000,
            };
            // About 20 generations of events on average, capped so debug builds stay fast.
            let span = (lookahead_ns + mean_ns).max(1);
            let end_ns = if case == 0 { 0 } else { span.saturating_mul(1 + g.next() % 20) };
            let cfg = PholdConfig { lps, events_per_lp, seed: g.next(), lookahead_ns, mean_ns, end_ns };
            let want = run_reference(&cfg);
            assert_eq!(run_engine(&cfg).unwrap(), want, "config {cfg:?}");
            nonempty += (want.events > 0) as u32;
        }
        assert!(nonempty >= 25, "the generator should mostly produce configurations that deliver events");
    }

    #[test]
    fn out_of_range_configs_are_errors() {
        let e = run_engine(&PholdConfig { lps: 0, ..PholdConfig::A }).unwrap_err();
        assert!(e.contains("--lps"), "{e}");
        let e = run_engine(&PholdConfig { lps: 1 << 20, events_per_lp: 1 << 20, ..PholdConfig::A }).unwrap_err();
        assert!(e.contains("--events-per-lp"), "{e}");
    }
}
