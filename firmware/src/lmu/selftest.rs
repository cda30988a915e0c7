//! Power-on self-test of the LMU firmware: runs power quality, protection and FLISR on a synthetic fault
//! through small in-memory HAL stand-ins, and the settings record through RAM-backed storage. A board runs
//! it at boot; the no_std probe calls it so the whole LMU stack is linked without std.
// Per-phase arrays (a, b, c) read most clearly with a phase index.
#![allow(clippy::needless_range_loop)]

use crate::hal::contactor::Contactor;
use crate::hal::metering::{BlockMeasurement, CycleMeasurement, RawSample, SampleSource};
use crate::hal::storage::RamStorage;
use crate::hal::{ErrorKind, ErrorType};
use crate::lmu::dsp::FrontEndSettings;
use crate::lmu::flisr::{FlisrSettings, PeerMsg};
use crate::lmu::nvm;
use crate::lmu::phasor::Phasor;
use crate::lmu::pq::PqSettings;
use crate::lmu::protection::ProtectionSettings;
use crate::lmu::{Lmu, LmuSettings};
use crate::time::Instant;

struct Coil {
    closed: bool,
}
impl ErrorType for Coil {
    type Error = ErrorKind;
}
impl Contactor for Coil {
    fn set_coil(&mut self, e: bool) -> Result<(), ErrorKind> {
        self.closed = e;
        Ok(())
    }
    fn aux_closed(&mut self) -> Result<bool, ErrorKind> {
        Ok(self.closed)
    }
}

/// One cycle of silence from a sampling front-end (exercises the DSP path).
struct Quiet(u32);
impl ErrorType for Quiet {
    type Error = ErrorKind;
}
impl SampleSource for Quiet {
    fn read_samples(&mut self, buf: &mut [RawSample]) -> Result<usize, ErrorKind> {
        let n = buf.len().min(self.0 as usize);
        for (k, s) in buf.iter_mut().take(n).enumerate() {
            *s = RawSample { seq: k as u32, ..RawSample::default() };
        }
        self.0 -= n as u32;
        Ok(n)
    }
}

fn balanced(v: f64, i: f64) -> CycleMeasurement {
    let a = 2.0 * core::f64::consts::PI / 3.0;
    let ang = [0.0, -a, a];
    let mut m = CycleMeasurement::default();
    for p in 0..3 {
        m.v[p] = Phasor::polar(v, ang[p]);
        m.i[p] = Phasor::polar(i, ang[p] - 0.1);
        m.v_rms[p] = v;
        m.i_rms[p] = i;
    }
    m
}

/// Runs the self-test. Returns the number of `Block` messages sent upstream on success.
pub fn run() -> Result<u32, &'static str> {
    let mut f = FlisrSettings::new(2);
    f.upstream = Some(1);
    f.downstream.push(3);
    let settings = LmuSettings {
        front_end: Some(FrontEndSettings {
            sample_rate_hz: 6400,
            nominal_hz: 50,
            v_per_count: 0.014,
            a_per_count: 0.38,
            full_scale_counts: 32767,
        }),
        pq: PqSettings::default(),
        protection: ProtectionSettings::default(),
        flisr: f,
    };
    let mut st = RamStorage([0xFF; 512]);
    nvm::store_settings(&mut st, &settings.protection).map_err(|_| "settings store")?;
    if nvm::load_settings(&mut st).map_err(|_| "settings load")? != settings.protection {
        return Err("settings round trip");
    }
    let mut lmu = Lmu::new(settings).map_err(|_| "settings invalid")?;
    let mut coil = Coil { closed: true };
    lmu.read_samples(Instant(0), &mut Quiet(128)).map_err(|_| "samples")?;
    let ms = |x: u64| Instant(x * 1_000_000);
    lmu.on_cycle(ms(0), &balanced(230.0, 50.0));
    lmu.on_block(ms(0), &BlockMeasurement { v_rms: [230.0; 3], freq_hz: 50.0, ..Default::default() });
    lmu.poll(ms(0), &mut coil);
    // A forward three-phase fault: 2 kA with the voltage sagging to 120 V.
    lmu.on_cycle(ms(100), &balanced(120.0, 2000.0));
    let mut now = ms(100);
    let mut blocks = 0;
    for _ in 0..64 {
        let next = lmu.poll(now, &mut coil);
        while let Some((to, m)) = lmu.pop_outgoing() {
            if to == 1 && matches!(m, PeerMsg::Block { .. }) {
                blocks += 1;
            }
        }
        if !coil.closed || next.as_nanos() > ms(1000).as_nanos() {
            break;
        }
        now = next;
    }
    if coil.closed {
        return Err("no trip on an unblocked forward fault");
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    #[test]
    fn selftest_trips_and_blocks() {
        let blocks = super::run().unwrap();
        assert!(blocks >= 2, "{blocks}");
    }
}
