//! HAL traits of the LMU's metering front-end: current and voltage transformers into an ADC.
//!
//! Two kinds of front-end exist. A [`SampleSource`] delivers raw simultaneous ADC samples (counts) of the three
//! phase-to-neutral voltages and the three phase plus neutral currents; the firmware's DSP
//! ([`crate::lmu::dsp`]) turns them into phasors, RMS, frequency and harmonics. A [`PhasorSource`] is a metering
//! IC that computes per-cycle fundamental phasors and RMS values itself and delivers [`CycleMeasurement`]s
//! (phasor-level fidelity in the simulator). Both feed the same protection, power-quality and FLISR logic.

use super::ErrorType;
use crate::lmu::phasor::Phasor;

/// One simultaneous sample of all channels, in ADC counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSample {
    /// Sample counter of the ADC (wraps); a gap means samples were lost.
    pub seq: u32,
    /// Phase-to-neutral voltages a, b, c (counts).
    pub v: [i32; 3],
    /// Phase currents a, b, c and the neutral current (counts).
    pub i: [i32; 4],
}

/// Quality of a measurement, so downstream logic can flag or ignore it (IEC 61000-4-30 flagging concept).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quality {
    /// At least one sample in the window hit the ADC's full scale (clipping or CT saturation).
    pub saturated: bool,
    /// Samples missing from the window (replaced by zeros).
    pub missing: u16,
}

/// Fundamental phasors and RMS values over one cycle, refreshed every half cycle (`Urms(1/2)` of
/// IEC 61000-4-30). Phasor magnitudes are RMS values; all phasors of one measurement share one angle reference.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CycleMeasurement {
    /// Phase-to-neutral voltages a, b, c (V).
    pub v: [Phasor; 3],
    /// Phase currents a, b, c (A), positive in the LMU's downstream direction.
    pub i: [Phasor; 3],
    /// Neutral current (A), positive downstream; zero when no neutral CT is fitted.
    pub i_n: Phasor,
    /// True RMS voltages including harmonics (V).
    pub v_rms: [f64; 3],
    /// True RMS phase currents (A).
    pub i_rms: [f64; 3],
    pub quality: Quality,
}

/// Values over a 10-cycle (50 Hz) window, the basic aggregation interval of IEC 61000-4-30 class A.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockMeasurement {
    /// True RMS phase-to-neutral voltages (V).
    pub v_rms: [f64; 3],
    /// True RMS phase currents (A).
    pub i_rms: [f64; 3],
    /// Total harmonic distortion of the voltages, harmonics 2..=40 over the fundamental (percent).
    pub v_thd_pct: [f64; 3],
    /// Fundamental voltage phasors (V), for unbalance.
    pub v1: [Phasor; 3],
    /// Measured frequency (Hz); 0 when it could not be measured.
    pub freq_hz: f64,
    pub quality: Quality,
}

/// A front-end delivering raw ADC samples.
pub trait SampleSource: ErrorType {
    /// Moves samples acquired since the last call into `buf` (oldest first) and returns how many.
    fn read_samples(&mut self, buf: &mut [RawSample]) -> Result<usize, Self::Error>;
}

/// A metering IC delivering per-cycle and per-10-cycle measurements.
pub trait PhasorSource: ErrorType {
    /// The newest cycle measurement if one is ready since the last call.
    fn read_cycle(&mut self) -> Result<Option<CycleMeasurement>, Self::Error>;
    /// The newest 10-cycle measurement if one is ready since the last call.
    fn read_block(&mut self) -> Result<Option<BlockMeasurement>, Self::Error>;
}
