//! The UART line between coordinator and gateway as a digital twin (one direction; the link is full duplex,
//! so each direction has its own line).
//!
//! - **Timing**: 8N1, 10 line bits per byte: a frame of `n` bytes occupies the line for `10 n / baud`
//!   seconds (rounded up to the nanosecond); at 115,200 baud the line carries at most 11,520 bytes/s.
//! - **Buffer**: bytes waiting for the line sit in a bounded FIFO of `buffer_bytes` (the frame on the line is
//!   not counted). A frame that does not fit is an overflow, handled by the policy: `DropNewest` discards the
//!   arriving frame, `DropOldest` discards queued frames from the head until it fits. Every discarded frame is
//!   counted. In steady state with offered load `L` bytes/s above capacity `C = baud/10`, frames overflow at
//!   `(L - C) / frame_bytes` per second.
//! - **Errors**: independent bit errors at `bit_error_rate` per data bit (positions drawn geometrically, so a
//!   zero rate costs nothing), and framing errors at `framing_error_rate` per byte (the receiver loses the
//!   byte). The framing layer's CRC and resynchronisation ([`gridtwin_firmware::link`]) deal with both.

use crate::engine::{SimDuration, SimRng};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// What happens when a frame does not fit the buffer.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Discard the arriving frame (tail drop).
    #[default]
    DropNewest,
    /// Discard the oldest queued frames until the new one fits.
    DropOldest,
}

/// Line settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UartSettings {
    pub baud: u32,
    pub buffer_bytes: usize,
    pub policy: OverflowPolicy,
    pub bit_error_rate: f64,
    pub framing_error_rate: f64,
}

/// Counters of one line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UartStats {
    pub frames_offered: u64,
    pub frames_sent: u64,
    pub frames_overflowed: u64,
    pub bytes_sent: u64,
    pub bits_flipped: u64,
    pub framing_errors: u64,
    pub busy_ns: u64,
}

/// One direction of the UART.
#[derive(Clone, Debug)]
pub struct UartLine {
    s: UartSettings,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    on_line: Option<Vec<u8>>,
    pub stats: UartStats,
}

impl UartLine {
    pub fn new(s: UartSettings) -> Self {
        UartLine { s, queue: VecDeque::new(), queued_bytes: 0, on_line: None, stats: UartStats::default() }
    }

    /// Line capacity in bytes per second (8N1).
    pub fn capacity_bytes_per_s(&self) -> f64 {
        self.s.baud as f64 / 10.0
    }

    /// Time `bytes` occupy the line.
    pub fn line_time(&self, bytes: usize) -> SimDuration {
        SimDuration::from_nanos((bytes as u64 * 10 * 1_000_000_000).div_ceil(self.s.baud.max(1) as u64))
    }

    /// Frames waiting or on the line.
    pub fn frames_pending(&self) -> usize {
        self.queue.len() + self.on_line.is_some() as usize
    }

    /// Queues a frame (already framed for the wire). Returns how many frames were discarded (this one, or
    /// old ones under `DropOldest`).
    pub fn offer(&mut self, frame: Vec<u8>) -> u64 {
        self.stats.frames_offered += 1;
        let mut dropped = 0;
        if frame.len() > self.s.buffer_bytes {
            self.stats.frames_overflowed += 1;
            return 1;
        }
        if self.queued_bytes + frame.len() > self.s.buffer_bytes {
            match self.s.policy {
                OverflowPolicy::DropNewest => {
                    self.stats.frames_overflowed += 1;
                    return 1;
                }
                OverflowPolicy::DropOldest => {
                    while self.queued_bytes + frame.len() > self.s.buffer_bytes {
                        let Some(old) = self.queue.pop_front() else { break };
                        self.queued_bytes -= old.len();
                        dropped += 1;
                    }
                    self.stats.frames_overflowed += dropped;
                }
            }
        }
        self.queued_bytes += frame.len();
        self.queue.push_back(frame);
        dropped
    }

    /// If the line is idle and a frame waits, puts it on the line and returns its line time.
    pub fn start(&mut self) -> Option<SimDuration> {
        if self.on_line.is_some() {
            return None;
        }
        let f = self.queue.pop_front()?;
        self.queued_bytes -= f.len();
        let t = self.line_time(f.len());
        self.stats.busy_ns += t.as_nanos();
        self.on_line = Some(f);
        Some(t)
    }

    /// The frame on the line has been sent: returns the bytes the receiver got (with line errors).
    pub fn finish(&mut self, rng: &mut SimRng) -> Vec<u8> {
        let Some(mut f) = self.on_line.take() else { return Vec::new() };
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += f.len() as u64;
        if self.s.bit_error_rate > 0.0 {
            let bits = f.len() as u64 * 8;
            let mut at = geometric(rng, self.s.bit_error_rate);
            while at < bits {
                f[(at / 8) as usize] ^= 1 << (at % 8);
                self.stats.bits_flipped += 1;
                at = at.saturating_add(1).saturating_add(geometric(rng, self.s.bit_error_rate));
            }
        }
        if self.s.framing_error_rate > 0.0 {
            let mut at = geometric(rng, self.s.framing_error_rate);
            let mut out = Vec::with_capacity(f.len());
            for (i, b) in f.into_iter().enumerate() {
                if i as u64 == at {
                    self.stats.framing_errors += 1;
                    at = at.saturating_add(1).saturating_add(geometric(rng, self.s.framing_error_rate));
                } else {
                    out.push(b);
                }
            }
            return out;
        }
        f
    }
}

/// Trials before the next success of probability `p` (0-based), from one uniform draw.
fn geometric(rng: &mut SimRng, p: f64) -> u64 {
    if p >= 1.0 {
        return 0;
    }
    let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let k = u.ln() / (-p).ln_1p();
    if k.is_finite() && k < 1e18 { k as u64 } else { u64::MAX / 2 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stream;

    fn line(policy: OverflowPolicy) -> UartLine {
        UartLine::new(UartSettings {
            baud: 115_200,
            buffer_bytes: 106,
            policy,
            bit_error_rate: 0.0,
            framing_error_rate: 0.0,
        })
    }

    #[test]
    fn timing_and_overflow_policies() {
        let mut l = line(OverflowPolicy::DropNewest);
        assert_eq!(l.capacity_bytes_per_s(), 11_520.0);
        assert_eq!(l.line_time(53), SimDuration::from_nanos(4_600_695));
        // A 106-byte buffer holds two 53-byte frames; a frame on the line frees its room.
        for _ in 0..2 {
            assert_eq!(l.offer(vec![1; 53]), 0);
        }
        assert_eq!(l.offer(vec![2; 53]), 1);
        assert!(l.start().is_some());
        assert_eq!(l.offer(vec![3; 53]), 0);
        let mut o = line(OverflowPolicy::DropOldest);
        o.offer(vec![1; 53]);
        o.offer(vec![1; 53]);
        assert_eq!(o.offer(vec![2; 53]), 1);
        assert_eq!(o.start(), Some(o.line_time(53)));
        assert_eq!(o.finish(&mut stream(1, 1, "uart")), vec![1; 53]);
        assert_eq!(o.start(), Some(o.line_time(53)));
        assert_eq!(o.finish(&mut stream(1, 1, "uart")), vec![2; 53]);
    }

    #[test]
    fn bit_errors_at_the_configured_rate() {
        let mut l = UartLine::new(UartSettings {
            baud: 115_200,
            buffer_bytes: 1 << 20,
            policy: OverflowPolicy::DropNewest,
            bit_error_rate: 1e-3,
            framing_error_rate: 0.0,
        });
        let mut rng = stream(3, 0, "uart");
        for _ in 0..1000 {
            l.offer(vec![0; 100]);
            l.start();
            l.finish(&mut rng);
        }
        // 800,000 bits at 1e-3: 800 +- 3 sigma (85).
        assert!((715..=885).contains(&l.stats.bits_flipped), "{}", l.stats.bits_flipped);
    }
}
