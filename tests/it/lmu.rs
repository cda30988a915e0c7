//! Integration tests of the LMU firmware and twins: fidelity agreement, THD recovery, robustness of the
//! firmware against arbitrary sample sequences.

use gridtwin::engine::stream;
use gridtwin::twin::sensor::{Fidelity, PrimaryState, SensorModel, SensorTwin};
use gridtwin_firmware::hal::metering::{BlockMeasurement, RawSample, SampleSource};
use gridtwin_firmware::lmu::dsp::Dsp;
use gridtwin_firmware::lmu::phasor::Phasor;

fn model() -> SensorModel {
    ron::from_str(&std::fs::read_to_string("models/lmu-v1.ron").unwrap()).unwrap()
}

fn state(harmonics: Vec<(u32, f64, f64)>) -> PrimaryState {
    let a = 2.0 * std::f64::consts::PI / 3.0;
    let ang = [0.0, -a, a];
    PrimaryState {
        v: ang.map(|x| Phasor::polar(231.5, x + 0.3)),
        i: ang.map(|x| Phasor::polar(183.0, x + 0.3 - 0.35)),
        i_n: Phasor::ZERO,
        v_harmonics: harmonics,
        freq_hz: 50.0,
    }
}

/// Runs the waveform path for 10 cycles and returns the firmware's block measurement.
fn waveform_block(s: PrimaryState) -> BlockMeasurement {
    let m = model();
    let mut twin = SensorTwin::new(m.clone(), Fidelity::Waveform, 25.0, stream(7, 1, "sensor-noise")).unwrap();
    let mut dsp = Dsp::new(m.front_end()).unwrap();
    twin.set_state(0, s);
    // Samples 0..=1279 are exactly 10 cycles at 6.4 kHz.
    twin.synthesise_until(1279 * 1_000_000_000 / 6400 + 1);
    let mut buf = [RawSample::default(); 256];
    let mut block = None;
    loop {
        let n = twin.read_samples(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for s in &buf[..n] {
            if let Some(b) = dsp.push(s).block {
                block = Some(b);
            }
        }
    }
    block.expect("one block after 1280 samples")
}

#[test]
fn waveform_and_phasor_fidelity_agree_on_rms_within_one_lsb() {
    let m = model();
    let s = state(vec![(5, 3.0, 0.0)]);
    let wave = waveform_block(s.clone());
    let mut ph = SensorTwin::new(m.clone(), Fidelity::Phasor, 25.0, stream(7, 1, "sensor-noise")).unwrap();
    ph.set_state(0, s);
    let phasor = ph.block_measurement();
    for p in 0..3 {
        let dv = (wave.v_rms[p] - phasor.v_rms[p]).abs();
        let di = (wave.i_rms[p] - phasor.i_rms[p]).abs();
        eprintln!(
            "phase {p}: |dV| = {dv:.5} V (LSB {:.5} V), |dI| = {di:.5} A (LSB {:.5} A)",
            m.v_per_count(),
            m.a_per_count()
        );
        assert!(dv <= m.v_per_count(), "phase {p}: V RMS differs by {dv} V > 1 LSB {}", m.v_per_count());
        assert!(di <= m.a_per_count(), "phase {p}: I RMS differs by {di} A > 1 LSB {}", m.a_per_count());
    }
}

#[test]
fn thd_of_known_harmonics_is_recovered_within_0_1_point() {
    let h = vec![(3, 4.0, 0.0), (5, 5.0, 30.0), (7, 3.0, -45.0), (11, 1.5, 10.0), (13, 1.0, 0.0), (39, 0.5, 0.0)];
    let expect = h.iter().map(|(_, p, _)| p * p).sum::<f64>().sqrt();
    let b = waveform_block(state(h));
    for p in 0..3 {
        eprintln!("phase {p}: THD {:.4} % vs {expect:.4} %", b.v_thd_pct[p]);
        assert!((b.v_thd_pct[p] - expect).abs() < 0.1, "phase {p}: THD {} vs {expect}", b.v_thd_pct[p]);
    }
    assert!((b.freq_hz - 50.0).abs() < 0.01, "{}", b.freq_hz);
}
