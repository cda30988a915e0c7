//! The LMU firmware on a pretend board: the HAL traits implemented for a made-up board (an ADC with a
//! sample FIFO, a coil driver with an auxiliary-contact input, a small FRAM), and the main loop a real board
//! would run: read samples, feed the firmware, drive the contactor, send FLISR frames, sleep until the next
//! deadline. The "hardware" here synthesises a feeder current that jumps to a fault at t = 1 s.
//!
//! Run with `cargo run --example pretend_board`.

use gridtwin_firmware::Instant;
use gridtwin_firmware::hal::contactor::Contactor;
use gridtwin_firmware::hal::metering::{RawSample, SampleSource};
use gridtwin_firmware::hal::storage::RamStorage;
use gridtwin_firmware::hal::{ErrorKind, ErrorType};
use gridtwin_firmware::lmu::dsp::FrontEndSettings;
use gridtwin_firmware::lmu::flisr::FlisrSettings;
use gridtwin_firmware::lmu::nvm;
use gridtwin_firmware::lmu::pq::PqSettings;
use gridtwin_firmware::lmu::protection::ProtectionSettings;
use gridtwin_firmware::lmu::{Lmu, LmuSettings};
use std::f64::consts::PI;

const FS_HZ: u64 = 6400;
const V_PER_COUNT: f64 = 0.014;
const A_PER_COUNT: f64 = 0.38;

/// The board's ADC: a FIFO filled by "DMA" up to the present time.
struct Adc {
    next: u64,
    fault_at_ns: u64,
}

impl Adc {
    /// What the converter sampled up to `now_ns` (the pretend analogue front-end).
    fn fill_until(&mut self, now_ns: u64, out: &mut Vec<RawSample>) {
        while self.next * 1_000_000_000 / FS_HZ <= now_ns {
            let t = self.next as f64 / FS_HZ as f64;
            let faulted = self.next * 1_000_000_000 / FS_HZ >= self.fault_at_ns;
            let (v_rms, i_rms) = if faulted { (150.0, 1800.0) } else { (230.0, 60.0) };
            let mut s = RawSample { seq: self.next as u32, ..Default::default() };
            for p in 0..3 {
                let ph = 2.0 * PI * 50.0 * t - p as f64 * 2.0 * PI / 3.0;
                s.v[p] = (v_rms * 2f64.sqrt() * ph.sin() / V_PER_COUNT) as i32;
                s.i[p] = (i_rms * 2f64.sqrt() * (ph - 0.3).sin() / A_PER_COUNT) as i32;
            }
            out.push(s);
            self.next += 1;
        }
    }
}

/// The HAL view of the ADC FIFO.
struct AdcFifo {
    fifo: Vec<RawSample>,
}
impl ErrorType for AdcFifo {
    type Error = ErrorKind;
}
impl SampleSource for AdcFifo {
    fn read_samples(&mut self, buf: &mut [RawSample]) -> Result<usize, ErrorKind> {
        let n = buf.len().min(self.fifo.len());
        for (slot, s) in buf.iter_mut().zip(self.fifo.drain(..n)) {
            *slot = s;
        }
        Ok(n)
    }
}

/// Coil driver GPIO and auxiliary-contact input; the mechanism moves 20 ms after the coil changes.
struct CoilDriver {
    coil: bool,
    aux: bool,
    moves_at_ns: Option<u64>,
    now_ns: u64,
}
impl ErrorType for CoilDriver {
    type Error = ErrorKind;
}
impl Contactor for CoilDriver {
    fn set_coil(&mut self, energised: bool) -> Result<(), ErrorKind> {
        if energised != self.coil {
            self.coil = energised;
            self.moves_at_ns = Some(self.now_ns + 20_000_000);
        }
        Ok(())
    }
    fn aux_closed(&mut self) -> Result<bool, ErrorKind> {
        if self.moves_at_ns.is_some_and(|t| self.now_ns >= t) {
            self.aux = self.coil;
            self.moves_at_ns = None;
        }
        Ok(self.aux)
    }
}

/// 8 KiB of FRAM: byte-writable in place, which is how the firmware's RAM-backed storage behaves.
type Fram = RamStorage<[u8; 8192]>;

fn main() {
    // Commissioning: settings written once, read back at every boot.
    let mut fram: Fram = RamStorage([0xFF; 8192]);
    nvm::store_settings(&mut fram, &ProtectionSettings::default()).expect("FRAM write");
    let protection = nvm::load_settings(&mut fram).expect("valid settings record");
    let mut log = nvm::EventLog::open(&mut fram).expect("event log");
    let mut flisr = FlisrSettings::new(7);
    flisr.upstream = Some(6);
    flisr.downstream = vec![8];
    let mut lmu = Lmu::new(LmuSettings {
        front_end: Some(FrontEndSettings {
            sample_rate_hz: FS_HZ as u32,
            nominal_hz: 50,
            v_per_count: V_PER_COUNT,
            a_per_count: A_PER_COUNT,
            full_scale_counts: 32767,
        }),
        pq: PqSettings::default(),
        protection,
        flisr,
    })
    .expect("valid settings");

    let mut adc = Adc { next: 0, fault_at_ns: 1_000_000_000 };
    let mut fifo = AdcFifo { fifo: Vec::new() };
    let mut coil = CoilDriver { coil: true, aux: true, moves_at_ns: None, now_ns: 0 };
    // The main loop: wake at the firmware's deadline or when the ADC FIFO is half full (every 5 ms).
    let mut now = 0u64;
    let mut was_closed = true;
    while now < 1_500_000_000 {
        adc.fill_until(now, &mut fifo.fifo);
        lmu.read_samples(Instant(now), &mut fifo).expect("ADC read");
        coil.now_ns = now;
        let deadline = lmu.poll(Instant(now), &mut coil);
        while let Some((to, msg)) = lmu.pop_outgoing() {
            println!("{:>8.3} ms  radio -> LMU {to}: {msg:?} ({:02x?})", now as f64 * 1e-6, msg.encode());
        }
        let closed = coil.aux_closed().unwrap_or(true);
        if closed != was_closed {
            println!("{:>8.3} ms  contactor {}", now as f64 * 1e-6, if closed { "closed" } else { "open" });
            log.append(&mut fram, now, 1, 7, if closed { 1.0 } else { 0.0 }).expect("log");
            was_closed = closed;
        }
        now = deadline.as_nanos().min(now + 5_000_000);
    }
    for r in lmu.flisr().reports() {
        println!("report: {r:?}");
    }
    println!("event log: {:?}", log.entries(&mut fram).expect("log read"));
}
