//! Frame security in the style of IEEE 802.15.4-2015 (clause 9): an auxiliary security header, AES-128-CCM*
//! with a 13-byte nonce and 4-, 8- or 16-byte MICs, a minimum security level per frame type, a sliding replay
//! window per (sender, key) and a bounded key store with provisioning, rotation and removal.
//!
//! Sans-IO and `no_std`: [`FrameSecurity::seal`] turns a plaintext payload into a secured frame and
//! [`FrameSecurity::open`] checks and opens one. A frame with a bad MIC, a stale or replayed counter, an
//! unknown key, a level below the policy or a malformed header is refused with a [`SecError`] and counted
//! in [`SecStats`]; nothing here panics on bad input.
//!
//! Secured frame layout (bytes):
//!
//! ```text
//! frame type (1) | security control (1) | frame counter (4, LE) | key index (1) | payload | MIC (0/4/8/16)
//! ```
//!
//! The security control byte holds the level in bits 0..=2 and the key identifier mode in bits 3..=4
//! (always 1: the key is named by its one-byte index, the key source is implicit: the network's). The
//! authenticated data is source address (2, LE), destination address (2, LE), frame type and the auxiliary
//! header; at MIC-only levels the payload is authenticated in clear, at ENC-MIC levels it is encrypted. The
//! CCM* nonce is the sender's extended address (8, BE; [`extended_address`]), the frame counter (4, BE) and
//! the level (1), as in 802.15.4. Level 4 (encryption without MIC) is refused: an unauthenticated frame
//! cannot be checked for freshness.

use crate::time::{Duration, Instant};
use aes::Aes128;
use alloc::vec::Vec;
use ccm::Ccm;
use ccm::aead::array::Array;
use ccm::aead::{AeadInOut, KeyInit};
use ccm::consts::{U4, U8, U13, U16};

/// Key length (AES-128), bytes.
pub const KEY_LEN: usize = 16;
/// Most keys a node stores (current, next and old ones during a rotation, and per-link keys).
pub const MAX_KEYS: usize = 8;
/// Most (sender, key) replay windows a node keeps by default; frames from further senders are refused. A
/// node in a dense mesh hears more neighbours than this and is sized at commissioning
/// ([`FrameSecurity::set_max_senders`]).
pub const MAX_SENDERS: usize = 64;
/// Hard ceiling of [`FrameSecurity::set_max_senders`] (replay windows are 16 bytes each).
pub const MAX_SENDERS_CEILING: usize = 4096;
/// The broadcast short address: a frame sent to it is authenticated for every receiver (802.15.4 puts the
/// destination address of the MAC header, broadcast included, into the authenticated data).
pub const BROADCAST_ADDR: u16 = 0xFFFF;
/// Width of the replay window (frame counters behind the highest seen that may still arrive once).
pub const REPLAY_WINDOW: u32 = 64;
/// Largest payload sealed or opened, bytes (an 802.15.4 PHY frame is at most 127 bytes).
pub const MAX_PAYLOAD: usize = 127;
/// Bytes a secured frame adds besides the MIC: frame type, security control, counter, key index.
pub const HEADER_LEN: usize = 1 + AuxHeader::LEN;

/// A 128-bit key.
pub type Key = [u8; KEY_LEN];

/// The security levels of 802.15.4 (table 9-6) this implementation supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum SecurityLevel {
    /// No security: the frame goes in clear without auxiliary header checks (policy permitting).
    None = 0,
    /// Authentication only, 4-byte MIC.
    Mic32 = 1,
    /// Authentication only, 8-byte MIC.
    Mic64 = 2,
    /// Authentication only, 16-byte MIC.
    Mic128 = 3,
    /// Encryption and 4-byte MIC.
    EncMic32 = 5,
    /// Encryption and 8-byte MIC.
    EncMic64 = 6,
    /// Encryption and 16-byte MIC.
    EncMic128 = 7,
}

impl SecurityLevel {
    /// The level of a security control field's low three bits; level 4 (encryption only) is unsupported.
    pub fn from_bits(b: u8) -> Option<Self> {
        Some(match b & 7 {
            0 => SecurityLevel::None,
            1 => SecurityLevel::Mic32,
            2 => SecurityLevel::Mic64,
            3 => SecurityLevel::Mic128,
            5 => SecurityLevel::EncMic32,
            6 => SecurityLevel::EncMic64,
            7 => SecurityLevel::EncMic128,
            _ => return None,
        })
    }
    /// MIC length in bytes.
    pub fn mic_len(self) -> usize {
        match self {
            SecurityLevel::None => 0,
            SecurityLevel::Mic32 | SecurityLevel::EncMic32 => 4,
            SecurityLevel::Mic64 | SecurityLevel::EncMic64 => 8,
            SecurityLevel::Mic128 | SecurityLevel::EncMic128 => 16,
        }
    }
    /// Whether the payload is encrypted.
    pub fn encrypts(self) -> bool {
        (self as u8) >= 5
    }
    /// Whether `self` gives at least the protection of `min` (802.15.4's ordering: confidentiality
    /// requires encryption, integrity a MIC at least as long).
    pub fn satisfies(self, min: SecurityLevel) -> bool {
        self.mic_len() >= min.mic_len() && (self.encrypts() || !min.encrypts())
    }
    /// Bytes a frame at this level adds to its payload (frame type, auxiliary header, MIC).
    pub fn overhead(self) -> usize {
        HEADER_LEN + self.mic_len()
    }
}

/// Why a frame was refused or could not be sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecError {
    /// Shorter than its headers and MIC.
    Truncated,
    /// Payload longer than [`MAX_PAYLOAD`].
    TooLong,
    /// Reserved security level or key identifier mode.
    BadHeader,
    /// Level below the policy's minimum for the frame type.
    LevelTooLow,
    /// No key with the frame's key index in the store.
    UnknownKey,
    /// The MIC does not verify (forged, corrupted, wrong key, or addressed to another node).
    BadMic,
    /// The counter was already seen from this sender under this key, or lies behind the replay window.
    Replayed,
    /// The replay table is full ([`MAX_SENDERS`]).
    SenderTableFull,
    /// The key store is full ([`MAX_KEYS`]).
    KeyStoreFull,
    /// No transmit key is set (never provisioned, or removed from the network).
    NoTxKey,
    /// The frame counter reached its end; a new key must be provisioned first.
    CounterExhausted,
    /// Time-stamped counters: the frame is older than the freshness bound (or further in the future).
    Stale,
}

/// The auxiliary security header (key identifier mode 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuxHeader {
    pub level: SecurityLevel,
    pub counter: u32,
    pub key_index: u8,
}

impl AuxHeader {
    /// Encoded length: security control, frame counter, key index.
    pub const LEN: usize = 6;
    const KEY_ID_MODE_INDEX: u8 = 1;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let c = self.counter.to_le_bytes();
        [self.level as u8 | (Self::KEY_ID_MODE_INDEX << 3), c[0], c[1], c[2], c[3], self.key_index]
    }

    pub fn decode(b: &[u8]) -> Result<Self, SecError> {
        if b.len() < Self::LEN {
            return Err(SecError::Truncated);
        }
        if b[0] >> 3 != Self::KEY_ID_MODE_INDEX {
            return Err(SecError::BadHeader);
        }
        let level = SecurityLevel::from_bits(b[0]).ok_or(SecError::BadHeader)?;
        Ok(AuxHeader { level, counter: u32::from_le_bytes([b[1], b[2], b[3], b[4]]), key_index: b[5] })
    }
}

/// The extended (64-bit) address of node `short` in PAN `pan`, as the nonce uses it: a fixed
/// organisation prefix, the PAN id and the short address.
pub fn extended_address(pan: u16, short: u16) -> u64 {
    0x4754_0000_0000_0000 | ((pan as u64) << 16) | short as u64
}

/// The 13-byte CCM* nonce: source extended address, frame counter, security level.
pub fn nonce(src_ext: u64, counter: u32, level: SecurityLevel) -> [u8; 13] {
    let mut n = [0u8; 13];
    n[..8].copy_from_slice(&src_ext.to_be_bytes());
    n[8..12].copy_from_slice(&counter.to_be_bytes());
    n[12] = level as u8;
    n
}

/// Runs AES-128-CCM* over `buf` in place (encrypting when `encrypt`, else authentication only over
/// `aad`), returning the MIC of `mic_len` bytes.
fn ccm_seal(key: &Key, n: &[u8; 13], aad: &[u8], buf: &mut [u8], mic_len: usize) -> Result<Vec<u8>, SecError> {
    macro_rules! run {
        ($m:ty) => {{
            let c = Ccm::<Aes128, $m, U13>::new(&Array(*key));
            c.encrypt_inout_detached(&Array(*n), aad, buf.into()).map(|t| t.to_vec()).map_err(|_| SecError::TooLong)
        }};
    }
    match mic_len {
        4 => run!(U4),
        8 => run!(U8),
        16 => run!(U16),
        _ => Err(SecError::BadHeader),
    }
}

fn ccm_open(key: &Key, n: &[u8; 13], aad: &[u8], buf: &mut [u8], mic: &[u8]) -> Result<(), SecError> {
    macro_rules! run {
        ($m:ty) => {{
            let c = Ccm::<Aes128, $m, U13>::new(&Array(*key));
            let tag = Array::try_from(mic).map_err(|_| SecError::BadHeader)?;
            c.decrypt_inout_detached(&Array(*n), aad, buf.into(), &tag).map_err(|_| SecError::BadMic)
        }};
    }
    match mic.len() {
        4 => run!(U4),
        8 => run!(U8),
        16 => run!(U16),
        _ => Err(SecError::BadHeader),
    }
}

/// Seals one frame with an explicit key and counter (the primitive under [`FrameSecurity::seal`]; also
/// what an attacker with a guessed key or a foreign counter would do).
#[allow(clippy::too_many_arguments)]
pub fn seal_with(
    key: &Key,
    key_index: u8,
    pan: u16,
    src: u16,
    dst: u16,
    frame_type: u8,
    level: SecurityLevel,
    counter: u32,
    payload: &[u8],
) -> Result<Vec<u8>, SecError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(SecError::TooLong);
    }
    if level == SecurityLevel::None {
        let mut out = Vec::with_capacity(1 + payload.len());
        out.push(frame_type);
        out.extend_from_slice(payload);
        return Ok(out);
    }
    let aux = AuxHeader { level, counter, key_index };
    let mut out = Vec::with_capacity(level.overhead() + payload.len());
    out.push(frame_type);
    out.extend_from_slice(&aux.encode());
    let head = out.len();
    out.extend_from_slice(payload);
    let n = nonce(extended_address(pan, src), counter, level);
    let mut aad = Vec::with_capacity(4 + out.len());
    aad.extend_from_slice(&src.to_le_bytes());
    aad.extend_from_slice(&dst.to_le_bytes());
    let mic = if level.encrypts() {
        aad.extend_from_slice(&out[..head]);
        ccm_seal(key, &n, &aad, &mut out[head..], level.mic_len())?
    } else {
        aad.extend_from_slice(&out);
        ccm_seal(key, &n, &aad, &mut [], level.mic_len())?
    };
    out.extend_from_slice(&mic);
    Ok(out)
}

/// Minimum security level per frame type (types 0..=15; others get `default`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub levels: [SecurityLevel; 16],
    pub default: SecurityLevel,
}

impl Policy {
    /// Every frame type needs `level`.
    pub fn uniform(level: SecurityLevel) -> Self {
        Policy { levels: [level; 16], default: level }
    }
    /// The minimum level for `frame_type`.
    pub fn required(&self, frame_type: u8) -> SecurityLevel {
        self.levels.get(frame_type as usize).copied().unwrap_or(self.default)
    }
    /// Sets the minimum level of one frame type (types beyond 15 follow `default`).
    pub fn with(mut self, frame_type: u8, level: SecurityLevel) -> Self {
        if let Some(l) = self.levels.get_mut(frame_type as usize) {
            *l = level;
        }
        self
    }
}

/// Counts of what a node sealed, opened and refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecStats {
    pub sealed: u64,
    pub opened: u64,
    pub bad_mic: u64,
    pub replayed: u64,
    pub unknown_key: u64,
    pub level_too_low: u64,
    pub malformed: u64,
    pub table_full: u64,
    /// Refused as too old (time-stamped counters).
    pub stale: u64,
    /// Bytes added to sealed frames (headers and MICs).
    pub overhead_bytes: u64,
}

impl SecStats {
    /// Every refused frame.
    pub fn dropped(&self) -> u64 {
        self.bad_mic
            + self.replayed
            + self.unknown_key
            + self.level_too_low
            + self.malformed
            + self.table_full
            + self.stale
    }
}

#[derive(Clone, Debug)]
struct KeyEntry {
    index: u8,
    key: Key,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    sender: u16,
    key_index: u8,
    highest: u32,
    /// Bit k: counter `highest - k` was accepted.
    seen: u64,
}

impl Window {
    /// Whether `ctr` is fresh (neither seen nor behind the window).
    fn fresh(&self, ctr: u32) -> bool {
        if ctr > self.highest {
            return true;
        }
        let back = self.highest - ctr;
        back < REPLAY_WINDOW && self.seen & (1u64 << back) == 0
    }
    fn accept(&mut self, ctr: u32) {
        if ctr > self.highest {
            let shift = ctr - self.highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = ctr;
        } else {
            self.seen |= 1u64 << (self.highest - ctr);
        }
    }
}

/// One node's frame security: its address, keys, outgoing counter, replay windows, policy and counts.
#[derive(Clone, Debug)]
pub struct FrameSecurity {
    pan: u16,
    addr: u16,
    keys: Vec<KeyEntry>,
    tx_key: Option<u8>,
    tx_level: SecurityLevel,
    counter: u32,
    windows: Vec<Window>,
    policy: Policy,
    stats: SecStats,
    /// Time-stamped counters (see [`FrameSecurity::set_freshness`]): the largest age accepted (ns).
    max_age_ns: Option<u64>,
    /// Most replay windows kept ([`MAX_SENDERS`] unless set).
    max_senders: usize,
}

/// Tick of time-stamped frame counters (ns): 10 ms, so 32 bits last 497 days.
pub const COUNTER_TICK_NS: u64 = 10_000_000;

impl FrameSecurity {
    /// A node with short address `addr` in PAN `pan`, no keys yet, sealing at `tx_level` (raised per frame
    /// type to the policy's minimum).
    pub fn new(pan: u16, addr: u16, policy: Policy, tx_level: SecurityLevel) -> Self {
        FrameSecurity {
            pan,
            addr,
            keys: Vec::new(),
            tx_key: None,
            tx_level,
            counter: 0,
            windows: Vec::new(),
            policy,
            stats: SecStats::default(),
            max_age_ns: None,
            max_senders: MAX_SENDERS,
        }
    }

    /// Sizes the replay table for `senders` (sender, key) pairs, at most [`MAX_SENDERS_CEILING`] (a mesh
    /// node is sized at commissioning for the neighbours it can hear); returns the size set.
    pub fn set_max_senders(&mut self, senders: usize) -> usize {
        self.max_senders = senders.clamp(1, MAX_SENDERS_CEILING);
        self.max_senders
    }

    /// Time-stamped counters, for nodes whose clocks are synchronised to well within `max_age`: the sender's
    /// counter never falls behind its time in [`COUNTER_TICK_NS`] ticks, and a receiver refuses a frame whose
    /// counter time is more than `max_age` before or after its own time ([`SecError::Stale`]). This bounds
    /// how late a frame can be delivered: a frame the receiver never got (lost, or jammed and recorded)
    /// cannot be replayed later, which counters alone do not prevent.
    pub fn set_freshness(&mut self, max_age: Duration) {
        self.max_age_ns = Some(max_age.as_nanos());
    }

    pub fn addr(&self) -> u16 {
        self.addr
    }
    pub fn stats(&self) -> &SecStats {
        &self.stats
    }
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// The next outgoing frame counter.
    pub fn counter(&self) -> u32 {
        self.counter
    }
    /// Indices of the stored keys, in store order.
    pub fn key_indices(&self) -> impl Iterator<Item = u8> + '_ {
        self.keys.iter().map(|k| k.index)
    }
    pub fn tx_key(&self) -> Option<u8> {
        self.tx_key
    }

    /// Provisions (or replaces) key `index`; the first key provisioned becomes the transmit key.
    pub fn install_key(&mut self, index: u8, key: Key) -> Result<(), SecError> {
        if let Some(e) = self.keys.iter_mut().find(|k| k.index == index) {
            e.key = key;
            // A replaced key starts fresh windows: counters under the old key say nothing about the new.
            self.windows.retain(|w| w.key_index != index);
        } else {
            if self.keys.len() >= MAX_KEYS {
                return Err(SecError::KeyStoreFull);
            }
            self.keys.push(KeyEntry { index, key });
        }
        if self.tx_key.is_none() {
            self.tx_key = Some(index);
        }
        Ok(())
    }

    /// Rotation: seal with key `index` from now on (receivers keep the old key until it is removed).
    pub fn use_key(&mut self, index: u8) -> Result<(), SecError> {
        if !self.keys.iter().any(|k| k.index == index) {
            return Err(SecError::UnknownKey);
        }
        self.tx_key = Some(index);
        Ok(())
    }

    /// Removes key `index` and its replay windows; returns whether it was stored.
    pub fn remove_key(&mut self, index: u8) -> bool {
        let before = self.keys.len();
        self.keys.retain(|k| k.index != index);
        self.windows.retain(|w| w.key_index != index);
        if self.tx_key == Some(index) {
            self.tx_key = self.keys.first().map(|k| k.index);
        }
        before != self.keys.len()
    }

    /// A node removed from the network loses every key (and can neither seal nor open).
    pub fn wipe(&mut self) {
        for k in &mut self.keys {
            k.key = [0; KEY_LEN];
        }
        self.keys.clear();
        self.windows.clear();
        self.tx_key = None;
    }

    fn key(&self, index: u8) -> Option<&Key> {
        self.keys.iter().find(|k| k.index == index).map(|k| &k.key)
    }

    /// Seals `payload` of `frame_type` for `dst` with the transmit key at the higher of the node's level
    /// and the policy's minimum for the type.
    pub fn seal(&mut self, dst: u16, frame_type: u8, payload: &[u8]) -> Result<Vec<u8>, SecError> {
        self.seal_at(Instant(0), dst, frame_type, payload)
    }

    /// As [`FrameSecurity::seal`] at time `now` (which time-stamped counters follow).
    pub fn seal_at(&mut self, now: Instant, dst: u16, frame_type: u8, payload: &[u8]) -> Result<Vec<u8>, SecError> {
        if self.max_age_ns.is_some() {
            let tick = (now.as_nanos() / COUNTER_TICK_NS).min(u32::MAX as u64) as u32;
            self.counter = self.counter.max(tick);
        }
        let req = self.policy.required(frame_type);
        let level = if self.tx_level.satisfies(req) { self.tx_level } else { req };
        if level == SecurityLevel::None {
            return seal_with(&[0; KEY_LEN], 0, self.pan, self.addr, dst, frame_type, level, 0, payload);
        }
        let index = self.tx_key.ok_or(SecError::NoTxKey)?;
        let key = *self.key(index).ok_or(SecError::NoTxKey)?;
        if self.counter == u32::MAX {
            return Err(SecError::CounterExhausted);
        }
        let out = seal_with(&key, index, self.pan, self.addr, dst, frame_type, level, self.counter, payload)?;
        self.counter += 1;
        self.stats.sealed += 1;
        self.stats.overhead_bytes += (out.len() - payload.len()) as u64;
        Ok(out)
    }

    /// Checks and opens a frame from `src` addressed to this node; returns (frame type, payload). Refused
    /// frames are counted by reason.
    pub fn open(&mut self, src: u16, frame: &[u8]) -> Result<(u8, Vec<u8>), SecError> {
        self.open_at(Instant(0), src, frame)
    }

    /// As [`FrameSecurity::open`] at time `now` (against which time-stamped counters are judged).
    pub fn open_at(&mut self, now: Instant, src: u16, frame: &[u8]) -> Result<(u8, Vec<u8>), SecError> {
        self.open_to(now, src, self.addr, frame)
    }

    /// As [`FrameSecurity::open_at`] for a frame whose MAC header names destination `dst`: this node's
    /// address or [`BROADCAST_ADDR`] (the authenticated data holds the destination the sender sealed for, so
    /// a unicast frame for another node, or one re-addressed, fails its MIC).
    pub fn open_to(&mut self, now: Instant, src: u16, dst: u16, frame: &[u8]) -> Result<(u8, Vec<u8>), SecError> {
        let r = if dst == self.addr || dst == BROADCAST_ADDR {
            self.open_inner(now, src, dst, frame)
        } else {
            Err(SecError::BadMic)
        };
        match r {
            Ok(_) => self.stats.opened += 1,
            Err(SecError::BadMic) => self.stats.bad_mic += 1,
            Err(SecError::Replayed) => self.stats.replayed += 1,
            Err(SecError::UnknownKey) => self.stats.unknown_key += 1,
            Err(SecError::LevelTooLow) => self.stats.level_too_low += 1,
            Err(SecError::SenderTableFull) => self.stats.table_full += 1,
            Err(SecError::Stale) => self.stats.stale += 1,
            Err(_) => self.stats.malformed += 1,
        }
        r
    }

    fn open_inner(&mut self, now: Instant, src: u16, dst: u16, frame: &[u8]) -> Result<(u8, Vec<u8>), SecError> {
        let (&frame_type, rest) = frame.split_first().ok_or(SecError::Truncated)?;
        let req = self.policy.required(frame_type);
        if req == SecurityLevel::None && rest.first().is_none_or(|&c| c >> 3 != AuxHeader::KEY_ID_MODE_INDEX) {
            return Ok((frame_type, rest.to_vec()));
        }
        let aux = AuxHeader::decode(rest)?;
        if !aux.level.satisfies(req) {
            return Err(SecError::LevelTooLow);
        }
        let body = &rest[AuxHeader::LEN..];
        let mic_len = aux.level.mic_len();
        if body.len() < mic_len {
            return Err(SecError::Truncated);
        }
        if body.len() - mic_len > MAX_PAYLOAD {
            return Err(SecError::TooLong);
        }
        let key = *self.key(aux.key_index).ok_or(SecError::UnknownKey)?;
        if let Some(max) = self.max_age_ns {
            let sent = aux.counter as u64 * COUNTER_TICK_NS;
            if sent.saturating_add(max) < now.as_nanos() || sent > now.as_nanos().saturating_add(max) {
                return Err(SecError::Stale);
            }
        }
        let w = self.windows.iter().position(|w| w.sender == src && w.key_index == aux.key_index);
        if let Some(w) = w
            && !self.windows[w].fresh(aux.counter)
        {
            return Err(SecError::Replayed);
        }
        if w.is_none() && self.windows.len() >= self.max_senders {
            return Err(SecError::SenderTableFull);
        }
        let (payload, mic) = body.split_at(body.len() - mic_len);
        let n = nonce(extended_address(self.pan, src), aux.counter, aux.level);
        let mut aad = Vec::with_capacity(4 + frame.len());
        aad.extend_from_slice(&src.to_le_bytes());
        aad.extend_from_slice(&dst.to_le_bytes());
        let mut out = payload.to_vec();
        if aux.level.encrypts() {
            aad.extend_from_slice(&frame[..HEADER_LEN]);
            ccm_open(&key, &n, &aad, &mut out, mic)?;
        } else {
            aad.extend_from_slice(&frame[..HEADER_LEN + payload.len()]);
            ccm_open(&key, &n, &aad, &mut [], mic)?;
        }
        match w {
            Some(w) => self.windows[w].accept(aux.counter),
            None => {
                let mut nw = Window { sender: src, key_index: aux.key_index, highest: aux.counter, seen: 0 };
                nw.accept(aux.counter);
                self.windows.push(nw);
            }
        }
        Ok((frame_type, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        s.chunks(2).map(|c| u8::from_str_radix(core::str::from_utf8(c).unwrap(), 16).unwrap()).collect()
    }

    /// RFC 3610, packet vector #1: AES-128, M = 8, L = 2 (13-byte nonce, as 802.15.4's CCM*).
    #[test]
    fn rfc3610_packet_vector_1() {
        let key: Key = hex("C0 C1 C2 C3 C4 C5 C6 C7 C8 C9 CA CB CC CD CE CF").try_into().unwrap();
        let n: [u8; 13] = hex("00 00 00 03 02 01 00 A0 A1 A2 A3 A4 A5").try_into().unwrap();
        let aad = hex("00 01 02 03 04 05 06 07");
        let mut buf = hex("08 09 0A 0B 0C 0D 0E 0F 10 11 12 13 14 15 16 17 18 19 1A 1B 1C 1D 1E");
        let mic = ccm_seal(&key, &n, &aad, &mut buf, 8).unwrap();
        assert_eq!(buf, hex("58 8C 97 9A 61 C6 63 D2 F0 66 D0 C2 C0 F9 89 80 6D 5F 6B 61 DA C3 84"));
        assert_eq!(mic, hex("17 E8 D1 2C FD F9 26 E0"));
        ccm_open(&key, &n, &aad, &mut buf, &mic).unwrap();
        assert_eq!(buf, hex("08 09 0A 0B 0C 0D 0E 0F 10 11 12 13 14 15 16 17 18 19 1A 1B 1C 1D 1E"));
        let mut bad = mic.clone();
        bad[0] ^= 1;
        assert_eq!(ccm_open(&key, &n, &aad, &mut buf.clone(), &bad), Err(SecError::BadMic));
    }

    const K1: Key = [0x11; 16];
    const K2: Key = [0x22; 16];

    fn pair(level: SecurityLevel) -> (FrameSecurity, FrameSecurity) {
        let p = Policy::uniform(SecurityLevel::Mic32);
        let mut a = FrameSecurity::new(7, 1, p, level);
        let mut b = FrameSecurity::new(7, 2, p, level);
        a.install_key(0, K1).unwrap();
        b.install_key(0, K1).unwrap();
        (a, b)
    }

    #[test]
    fn every_level_round_trips_with_its_overhead() {
        for level in [
            SecurityLevel::Mic32,
            SecurityLevel::Mic64,
            SecurityLevel::Mic128,
            SecurityLevel::EncMic32,
            SecurityLevel::EncMic64,
            SecurityLevel::EncMic128,
        ] {
            let (mut a, mut b) = pair(level);
            let f = a.seal(2, 3, &[5, 6, 0, 0]).unwrap();
            assert_eq!(f.len(), 4 + level.overhead());
            assert_eq!(f[HEADER_LEN..HEADER_LEN + 4] == [5, 6, 0, 0], !level.encrypts(), "{level:?}");
            assert_eq!(b.open(1, &f).unwrap(), (3, vec![5, 6, 0, 0]));
        }
    }

    #[test]
    fn bad_mic_stale_counter_unknown_key_and_garbage_are_dropped_and_counted() {
        let (mut a, mut b) = pair(SecurityLevel::EncMic64);
        let f1 = a.seal(2, 1, b"trip").unwrap();
        let f2 = a.seal(2, 1, b"trip").unwrap();
        assert!(b.open(1, &f2).is_ok());
        // Out of order inside the window: accepted once.
        assert!(b.open(1, &f1).is_ok());
        assert_eq!(b.open(1, &f1), Err(SecError::Replayed));
        assert_eq!(b.open(1, &f2), Err(SecError::Replayed));
        let mut bad = a.seal(2, 1, b"trip").unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        assert_eq!(b.open(1, &bad), Err(SecError::BadMic));
        // Spoofed source (another node's address): the nonce and AAD differ.
        let f = a.seal(2, 1, b"trip").unwrap();
        assert_eq!(b.open(9, &f), Err(SecError::BadMic));
        // Addressed to someone else.
        let f = a.seal(3, 1, b"trip").unwrap();
        assert_eq!(b.open(1, &f), Err(SecError::BadMic));
        // A guessed key under the network's key index.
        let g = seal_with(&K2, 0, 7, 1, 2, 1, SecurityLevel::EncMic64, 1000, b"trip").unwrap();
        assert_eq!(b.open(1, &g), Err(SecError::BadMic));
        let u = seal_with(&K2, 5, 7, 1, 2, 1, SecurityLevel::EncMic64, 1000, b"trip").unwrap();
        assert_eq!(b.open(1, &u), Err(SecError::UnknownKey));
        // Clear frames where the policy asks for a MIC.
        assert!(b.open(1, &[1, b't', b'r', b'i', b'p']).is_err());
        // Too weak for the policy.
        let mut strict = FrameSecurity::new(7, 2, Policy::uniform(SecurityLevel::EncMic64), SecurityLevel::EncMic64);
        strict.install_key(0, K1).unwrap();
        let weak = seal_with(&K1, 0, 7, 1, 2, 1, SecurityLevel::Mic32, 5000, b"trip").unwrap();
        assert_eq!(strict.open(1, &weak), Err(SecError::LevelTooLow));
        // Garbage of every length never panics.
        for len in 0..40 {
            let g: Vec<u8> = (0..len).map(|k| (k * 37 + 11) as u8).collect();
            assert!(b.open(1, &g).is_err());
        }
        let s = b.stats();
        assert_eq!(s.opened, 2);
        assert_eq!(s.replayed, 2);
        assert!(s.bad_mic >= 4 && s.unknown_key >= 1);
        assert_eq!(s.dropped(), s.bad_mic + s.replayed + s.unknown_key + s.level_too_low + s.malformed);
    }

    #[test]
    fn broadcasts_open_at_every_receiver_and_unicasts_only_at_theirs() {
        let (mut a, mut b) = pair(SecurityLevel::Mic64);
        let mut c = FrameSecurity::new(7, 3, Policy::uniform(SecurityLevel::Mic32), SecurityLevel::Mic32);
        c.install_key(0, K1).unwrap();
        let dio = a.seal(BROADCAST_ADDR, 1, &[9, 9, 9]).unwrap();
        assert_eq!(b.open_to(Instant(0), 1, BROADCAST_ADDR, &dio).unwrap(), (1, vec![9, 9, 9]));
        assert_eq!(c.open_to(Instant(0), 1, BROADCAST_ADDR, &dio).unwrap(), (1, vec![9, 9, 9]));
        // A broadcast presented as a unicast (or the reverse) does not verify.
        let mut d = FrameSecurity::new(7, 4, Policy::uniform(SecurityLevel::Mic32), SecurityLevel::Mic32);
        d.install_key(0, K1).unwrap();
        assert_eq!(d.open_to(Instant(0), 1, 4, &dio), Err(SecError::BadMic));
        let uni = a.seal(2, 1, &[1]).unwrap();
        assert_eq!(c.open_to(Instant(0), 1, BROADCAST_ADDR, &uni), Err(SecError::BadMic));
        // Overheard by a node it was not addressed to: refused without trying the key.
        assert_eq!(c.open_to(Instant(0), 1, 2, &uni), Err(SecError::BadMic));
        assert!(b.open_to(Instant(0), 1, 2, &uni).is_ok());
    }

    #[test]
    fn the_replay_table_is_sized_at_commissioning() {
        let p = Policy::uniform(SecurityLevel::Mic32);
        let mut r = FrameSecurity::new(7, 1000, p, SecurityLevel::Mic32);
        r.install_key(0, K1).unwrap();
        assert_eq!(r.set_max_senders(100), 100);
        let mut senders: Vec<FrameSecurity> = (0..101u16)
            .map(|k| {
                let mut s = FrameSecurity::new(7, k, p, SecurityLevel::Mic32);
                s.install_key(0, K1).unwrap();
                s
            })
            .collect();
        for (k, s) in senders.iter_mut().enumerate() {
            let f = s.seal(1000, 1, b"x").unwrap();
            let got = r.open(k as u16, &f);
            assert_eq!(got.is_ok(), k < 100, "sender {k}: {got:?}");
        }
        assert_eq!(r.stats().table_full, 1);
        assert_eq!(r.set_max_senders(usize::MAX), MAX_SENDERS_CEILING);
    }

    #[test]
    fn counters_behind_the_window_are_stale() {
        let (mut a, mut b) = pair(SecurityLevel::Mic64);
        let old = a.seal(2, 1, b"x").unwrap();
        for _ in 0..REPLAY_WINDOW + 1 {
            let f = a.seal(2, 1, b"x").unwrap();
            b.open(1, &f).unwrap();
        }
        assert_eq!(b.open(1, &old), Err(SecError::Replayed));
    }

    #[test]
    fn time_stamped_counters_refuse_late_frames() {
        let (mut a, mut b) = pair(SecurityLevel::EncMic64);
        a.set_freshness(Duration::from_millis(2000));
        b.set_freshness(Duration::from_millis(2000));
        let t = |s: u64| Instant(s * 1_000_000_000);
        let lost = a.seal_at(t(100), 2, 2, b"open").unwrap();
        let next = a.seal_at(t(101), 2, 2, b"open").unwrap();
        assert!(b.open_at(t(101), 1, &next).is_ok());
        // The frame the receiver never got, delivered (replayed) later than the bound: refused.
        assert_eq!(b.open_at(t(105), 1, &lost), Err(SecError::Stale));
        // A frame from too far in the future is refused too.
        let ahead = a.seal_at(t(200), 2, 2, b"open").unwrap();
        assert_eq!(b.open_at(t(102), 1, &ahead), Err(SecError::Stale));
        assert_eq!(b.stats().stale, 2);
    }

    #[test]
    fn rotation_and_removal() {
        let (mut a, mut b) = pair(SecurityLevel::EncMic32);
        a.install_key(1, K2).unwrap();
        b.install_key(1, K2).unwrap();
        let old = a.seal(2, 1, b"x").unwrap();
        a.use_key(1).unwrap();
        let new = a.seal(2, 1, b"y").unwrap();
        assert_eq!(new[HEADER_LEN - 1], 1);
        assert!(b.open(1, &old).is_ok());
        assert!(b.open(1, &new).is_ok());
        assert!(b.remove_key(0));
        let old2 = seal_with(&K1, 0, 7, 1, 2, 1, SecurityLevel::EncMic32, 99, b"x").unwrap();
        assert_eq!(b.open(1, &old2), Err(SecError::UnknownKey));
        // The removed node can no longer seal, and nothing it sealed before helps it later.
        a.wipe();
        assert_eq!(a.seal(2, 1, b"z"), Err(SecError::NoTxKey));
        assert_eq!(a.key_indices().count(), 0);
        // The store is bounded.
        let mut c = FrameSecurity::new(7, 3, Policy::uniform(SecurityLevel::Mic32), SecurityLevel::Mic32);
        for k in 0..MAX_KEYS as u8 {
            c.install_key(k, K1).unwrap();
        }
        assert_eq!(c.install_key(200, K1), Err(SecError::KeyStoreFull));
        assert_eq!(c.use_key(201), Err(SecError::UnknownKey));
    }
}
