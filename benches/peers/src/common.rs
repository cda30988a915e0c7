//! What every engine shares: the PHOLD-ns random stream, the named configurations and the reference table.
//!
//! The definition is in `gridtwin::engine::phold` (and the project's phold.md): times are integer
//! nanoseconds, LP `i` owns a SplitMix64 stream seeded `SEED ^ ((i + 1) * GOLDEN)`, every handled event draws a
//! destination first and then a delay `L_NS + trunc(-MEAN_NS * ln(u))`. This file re-implements the stream on
//! purpose (rather than reusing gridtwin's) so each peer is driven by code that does not depend on gridtwin.

use gridtwin::engine::phold::PholdConfig;
use std::time::Instant;

/// Wall-clock and process CPU time at one moment. CPU time is what a run costs when other work shares the
/// cores (the machine this was written on was often loaded); on an idle machine the two agree.
#[derive(Clone, Copy)]
pub struct Stamp {
    wall: Instant,
    cpu_s: f64,
}

impl Stamp {
    pub fn now() -> Self {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec through a valid pointer; the clock id is a constant.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        let cpu_s = if rc == 0 { ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9 } else { f64::NAN };
        Stamp { wall: Instant::now(), cpu_s }
    }
}

/// Seconds spent building a model (wall) and running it (wall and CPU).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub setup_s: f64,
    pub run_s: f64,
    pub run_cpu_s: f64,
}

impl Timing {
    /// From stamps taken before the build, between build and run, and after the run.
    pub fn from_stamps(t0: Stamp, t1: Stamp, t2: Stamp) -> Self {
        Timing {
            setup_s: (t1.wall - t0.wall).as_secs_f64(),
            run_s: (t2.wall - t1.wall).as_secs_f64(),
            run_cpu_s: t2.cpu_s - t1.cpu_s,
        }
    }
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// One LP's SplitMix64 stream.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stream(u64);

impl Stream {
    pub fn for_lp(seed: u64, lp: u32) -> Self {
        Stream(seed ^ (lp as u64 + 1).wrapping_mul(GOLDEN))
    }
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// The next delay in ns: lookahead plus an exponential draw truncated toward zero.
    #[inline(always)]
    pub fn delay_ns(&mut self, lookahead_ns: u64, mean_ns: f64) -> u64 {
        let u = ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
        lookahead_ns.wrapping_add((-mean_ns * u.ln()) as u64)
    }
    /// The next destination LP, uniform in `0..lps` by multiply-shift.
    #[inline(always)]
    pub fn dest(&mut self, lps: u32) -> u32 {
        ((self.next_u64() as u128 * lps as u128) >> 64) as u32
    }
}

/// A named configuration with its expected result from the reference table.
pub struct Named {
    pub name: &'static str,
    pub cfg: PholdConfig,
    pub events: u64,
    pub checksum: u64,
}

/// Configs A, A-short, B and C (SEED 42, L_NS 100 ms, MEAN_NS 900 ms) and their reference results.
pub fn named(name: &str) -> Option<Named> {
    let a = PholdConfig::A;
    let (cfg, events, checksum) = match name {
        "A" => (a, 3_259_590, 0x0484_a4d8_eb86_3716),
        "A-short" => (PholdConfig { end_ns: 20_000_000_000, ..a }, 323_005, 0x000b_8472_532a_84d5),
        "B" => (PholdConfig { end_ns: 2_000_000_000_000, ..a }, 32_804_471, 0xc780_6c0f_0a75_3dd3),
        "C" => (PholdConfig { lps: 16, events_per_lp: 1024, ..a }, 3_272_494, 0x048a_c344_7c25_ac25),
        _ => return None,
    };
    let name = match name {
        "A" => "A",
        "A-short" => "A-short",
        "B" => "B",
        _ => "C",
    };
    Some(Named { name, cfg, events, checksum })
}
