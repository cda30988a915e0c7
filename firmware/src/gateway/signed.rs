//! Operator-signed actuator commands, verified end to end by the LMU that switches.
//!
//! The operator (the cloud) signs each command with its ed25519 key; the broker and the gateway only carry it,
//! and the LMU verifies it against the operator's public key provisioned at commissioning before it moves its
//! contactor. A command altered anywhere on the way (topic, LMU id, action, argument, counter, expiry) no longer
//! matches its signature; one injected by a party without the operator's key has none that verifies; an old one
//! replayed carries a counter the LMU has already passed, or has expired.
//!
//! **Signed message**: `DOMAIN || body`, where `body` is the first [`BODY_LEN`] bytes of the mesh frame below.
//! The domain string keeps a command signature from ever verifying as a chain transaction, a vote or anything
//! else the same key might sign.
//!
//! **Mesh frame** ([`SIGNED_LEN`] = 91 bytes, little-endian):
//!
//! ```text
//! 0    1     2        6        10      11     15        19            27          91
//! | 1 | 'S' | lmu_id | cmd_id | action | arg  | counter | expires_ns  | signature |
//! ```
//!
//! `counter` rises with every command the operator signs (per operator key), so each LMU accepts a counter only
//! above the last it accepted; `expires_ns` is the operator's clock (the LMUs' clocks are synchronised) after
//! which the command is void.
//!
//! **MQTT payload**: the command's text ([`Command::to_text`]) followed by `ctr=<counter> exp=<expires_ns>
//! sig=<128 hex digits>`, e.g. `open 7 id=3 ctr=12 exp=95000000000 sig=9a0c...`. The gateway converts text to
//! frame without any key: it cannot make or mend a signature.

use super::command::{Action, Command, CommandError, CommandErrorKind, FRAME_VERSION, MAX_TEXT};
use crate::time::Instant;
use alloc::string::String;
use core::fmt::Write;
use ed25519_dalek::{Signature, Signer as _, Verifier as _};
pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// Domain separation of command signatures.
pub const DOMAIN: &[u8] = b"gridtwin/operator-command/v1\0";
/// Frame kind byte of a signed command (`'S'`).
pub const SIGNED_KIND: u8 = b'S';
/// Signed bytes of the frame (everything before the signature).
pub const BODY_LEN: usize = 27;
/// Signed command frame length, bytes.
pub const SIGNED_LEN: usize = BODY_LEN + 64;
/// Longest signed text payload, bytes (the command's text and the three signature words).
pub const MAX_SIGNED_TEXT: usize = MAX_TEXT + 160;

/// A command with the operator's counter, expiry and signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedCommand {
    pub command: Command,
    pub counter: u32,
    pub expires_ns: u64,
    pub signature: [u8; 64],
}

fn bad() -> CommandError {
    CommandError { word: 0, kind: CommandErrorKind::BadFrame }
}

impl SignedCommand {
    /// Signs `command` with the operator's key.
    pub fn sign(key: &SigningKey, command: Command, counter: u32, expires_ns: u64) -> Self {
        let mut s = SignedCommand { command, counter, expires_ns, signature: [0; 64] };
        s.signature = key.sign(&s.message()).to_bytes();
        s
    }

    /// The signed bytes of the frame.
    pub fn body(&self) -> [u8; BODY_LEN] {
        let mut b = [0u8; BODY_LEN];
        let (code, arg) = self.command.action.code();
        b[0] = FRAME_VERSION;
        b[1] = SIGNED_KIND;
        b[2..6].copy_from_slice(&self.command.lmu_id.to_le_bytes());
        b[6..10].copy_from_slice(&self.command.id.to_le_bytes());
        b[10] = code;
        b[11..15].copy_from_slice(&arg.to_le_bytes());
        b[15..19].copy_from_slice(&self.counter.to_le_bytes());
        b[19..27].copy_from_slice(&self.expires_ns.to_le_bytes());
        b
    }

    fn message(&self) -> [u8; DOMAIN.len() + BODY_LEN] {
        let mut m = [0u8; DOMAIN.len() + BODY_LEN];
        m[..DOMAIN.len()].copy_from_slice(DOMAIN);
        m[DOMAIN.len()..].copy_from_slice(&self.body());
        m
    }

    /// Whether the signature is the operator's over these fields.
    pub fn verify(&self, operator: &VerifyingKey) -> bool {
        operator.verify(&self.message(), &Signature::from_bytes(&self.signature)).is_ok()
    }

    /// The mesh frame.
    pub fn to_frame(&self) -> [u8; SIGNED_LEN] {
        let mut f = [0u8; SIGNED_LEN];
        f[..BODY_LEN].copy_from_slice(&self.body());
        f[BODY_LEN..].copy_from_slice(&self.signature);
        f
    }

    /// Whether `bytes` look like a signed command frame (version and kind); says nothing of validity.
    pub fn is_frame(bytes: &[u8]) -> bool {
        bytes.len() >= 2 && bytes[0] == FRAME_VERSION && bytes[1] == SIGNED_KIND
    }

    /// Reads a signed mesh frame (without verifying the signature).
    pub fn from_frame(b: &[u8]) -> Result<Self, CommandError> {
        if b.len() != SIGNED_LEN || !Self::is_frame(b) {
            return Err(bad());
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let action = Action::from_code(b[10], u32_at(11)).ok_or(bad())?;
        let mut e = [0u8; 8];
        e.copy_from_slice(&b[19..27]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[BODY_LEN..]);
        Ok(SignedCommand {
            command: Command { lmu_id: u32_at(2), id: u32_at(6), action },
            counter: u32_at(15),
            expires_ns: u64::from_le_bytes(e),
            signature,
        })
    }

    /// The MQTT text payload.
    pub fn to_text(&self) -> String {
        let mut s = self.command.to_text();
        let _ = write!(s, " ctr={} exp={} sig=", self.counter, self.expires_ns);
        for b in self.signature {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Whether a text payload carries a signature (its last word starts with `sig=`).
    pub fn is_signed_text(payload: &[u8]) -> bool {
        payload.split(|b| b.is_ascii_whitespace()).rfind(|w| !w.is_empty()).is_some_and(|w| w.starts_with(b"sig="))
    }

    /// Parses a signed text payload (without verifying the signature): the command's words, then `ctr=`,
    /// `exp=` and `sig=`, in that order. Errors name the word at fault.
    pub fn parse(payload: &[u8]) -> Result<Self, CommandError> {
        if payload.len() > MAX_SIGNED_TEXT {
            return Err(CommandError { word: 0, kind: CommandErrorKind::TooLong });
        }
        let text = core::str::from_utf8(payload)
            .ok()
            .filter(|t| t.is_ascii())
            .ok_or(CommandError { word: 0, kind: CommandErrorKind::NotAscii })?;
        let words: alloc::vec::Vec<&str> = text.split_ascii_whitespace().collect();
        let n = words.len();
        if n < 5 {
            return Err(CommandError { word: n, kind: CommandErrorKind::BadSignatureWords });
        }
        let field = |k: usize, name: &str| {
            words[k].strip_prefix(name).ok_or(CommandError { word: k + 1, kind: CommandErrorKind::BadSignatureWords })
        };
        let sig_word = |k: usize| CommandError { word: k + 1, kind: CommandErrorKind::BadSignatureWords };
        let counter = field(n - 3, "ctr=")?.parse::<u32>().map_err(|_| sig_word(n - 3))?;
        let expires_ns = field(n - 2, "exp=")?.parse::<u64>().map_err(|_| sig_word(n - 2))?;
        let hex = field(n - 1, "sig=")?.as_bytes();
        if hex.len() != 128 {
            return Err(sig_word(n - 1));
        }
        let mut signature = [0u8; 64];
        for (i, pair) in hex.chunks(2).enumerate() {
            let d = |c: u8| (c as char).to_digit(16);
            let (Some(hi), Some(lo)) = (d(pair[0]), d(pair[1])) else { return Err(sig_word(n - 1)) };
            signature[i] = (hi * 16 + lo) as u8;
        }
        // The command's own words end where the `ctr=` word begins (its last occurrence: the words after it
        // are `exp=` digits and `sig=` hex).
        let cut = text.rfind(words[n - 3]).unwrap_or(text.len());
        let command = Command::parse(&text.as_bytes()[..cut])?;
        Ok(SignedCommand { command, counter, expires_ns, signature })
    }
}

/// Why an LMU refused an operator command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a command frame (length, version, kind, action, CRC).
    Malformed,
    /// A plain (unsigned) command while an operator key is provisioned.
    Unsigned,
    /// The signature is not the operator's over these bytes (forged, or altered on the way).
    BadSignature,
    /// Signed for another LMU.
    WrongLmu,
    /// The counter is not above the last one accepted (a replay, or an older command overtaken).
    Replayed,
    /// Past its expiry.
    Expired,
}

/// Commands an LMU's verifier accepted and refused, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyStats {
    pub accepted: u64,
    pub malformed: u64,
    pub unsigned: u64,
    pub bad_signature: u64,
    pub wrong_lmu: u64,
    pub replayed: u64,
    pub expired: u64,
}

impl VerifyStats {
    pub fn refused(&self) -> u64 {
        self.malformed + self.unsigned + self.bad_signature + self.wrong_lmu + self.replayed + self.expired
    }
}

/// The LMU side: the provisioned operator key and the last counter accepted.
#[derive(Clone, Debug)]
pub struct CommandVerifier {
    operator: VerifyingKey,
    lmu_id: u32,
    /// Highest counter accepted (none yet: `None`).
    last_counter: Option<u32>,
    pub stats: VerifyStats,
}

/// A public key that is not a valid ed25519 point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadKey;

impl CommandVerifier {
    /// A verifier for LMU `lmu_id` trusting the operator's public key `operator`.
    pub fn new(operator: &[u8; 32], lmu_id: u32) -> Result<Self, BadKey> {
        let operator = VerifyingKey::from_bytes(operator).map_err(|_| BadKey)?;
        if operator.is_weak() {
            return Err(BadKey);
        }
        Ok(CommandVerifier { operator, lmu_id, last_counter: None, stats: VerifyStats::default() })
    }

    /// Checks a command frame arriving at `now`; an accepted one moves the counter on. Every refusal is counted.
    pub fn check(&mut self, now: Instant, frame: &[u8]) -> Result<Command, Refusal> {
        let r = self.judge(now, frame);
        match r {
            Ok(_) => self.stats.accepted += 1,
            Err(Refusal::Malformed) => self.stats.malformed += 1,
            Err(Refusal::Unsigned) => self.stats.unsigned += 1,
            Err(Refusal::BadSignature) => self.stats.bad_signature += 1,
            Err(Refusal::WrongLmu) => self.stats.wrong_lmu += 1,
            Err(Refusal::Replayed) => self.stats.replayed += 1,
            Err(Refusal::Expired) => self.stats.expired += 1,
        }
        r
    }

    fn judge(&mut self, now: Instant, frame: &[u8]) -> Result<Command, Refusal> {
        if Command::is_frame(frame) {
            return Err(if Command::from_frame(frame).is_ok() { Refusal::Unsigned } else { Refusal::Malformed });
        }
        let s = SignedCommand::from_frame(frame).map_err(|_| Refusal::Malformed)?;
        if !s.verify(&self.operator) {
            return Err(Refusal::BadSignature);
        }
        if s.command.lmu_id != self.lmu_id {
            return Err(Refusal::WrongLmu);
        }
        if self.last_counter.is_some_and(|c| s.counter <= c) {
            return Err(Refusal::Replayed);
        }
        if now.as_nanos() > s.expires_ns {
            return Err(Refusal::Expired);
        }
        self.last_counter = Some(s.counter);
        Ok(s.command)
    }
}

/// Reads a command frame of either form without any key: the command and whether it was signed.
pub fn read_any(frame: &[u8]) -> Result<(Command, bool), CommandError> {
    if SignedCommand::is_frame(frame) {
        SignedCommand::from_frame(frame).map(|s| (s.command, true))
    } else {
        Command::from_frame(frame).map(|c| (c, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn text_and_frame_roundtrip_and_verify() {
        let k = key(7);
        let c = Command { lmu_id: 4, action: Action::ReportEvery(60), id: 9 };
        let s = SignedCommand::sign(&k, c, 3, 1_000);
        assert_eq!(SignedCommand::parse(s.to_text().as_bytes()), Ok(s));
        assert!(SignedCommand::is_signed_text(s.to_text().as_bytes()));
        assert!(!SignedCommand::is_signed_text(b"open 4"));
        assert_eq!(SignedCommand::from_frame(&s.to_frame()), Ok(s));
        assert!(s.verify(&k.verifying_key()));
        assert!(!s.verify(&key(8).verifying_key()));
        assert_eq!(read_any(&s.to_frame()), Ok((c, true)));
        assert_eq!(read_any(&c.to_frame()), Ok((c, false)));
    }

    #[test]
    fn lmu_refuses_what_was_altered_injected_replayed_or_stale() {
        let k = key(7);
        let mut v = CommandVerifier::new(&k.verifying_key().to_bytes(), 4).unwrap();
        let open = Command { lmu_id: 4, action: Action::Open, id: 1 };
        let auto = Command { lmu_id: 4, action: Action::Auto, id: 2 };
        let s = SignedCommand::sign(&k, auto, 10, 5_000);
        // Every single-bit change of the frame is refused.
        for i in 0..SIGNED_LEN * 8 {
            let mut f = s.to_frame();
            f[i / 8] ^= 1 << (i % 8);
            assert!(v.check(Instant(0), &f).is_err(), "bit {i}");
        }
        // An altered action with the genuine signature.
        let mut altered = s;
        altered.command = Command { action: Action::Open, ..auto };
        assert_eq!(v.check(Instant(0), &altered.to_frame()), Err(Refusal::BadSignature));
        // Unsigned, and signed by another key.
        assert_eq!(v.check(Instant(0), &open.to_frame()), Err(Refusal::Unsigned));
        let forged = SignedCommand::sign(&key(9), open, 99, 5_000);
        assert_eq!(v.check(Instant(0), &forged.to_frame()), Err(Refusal::BadSignature));
        // For another LMU.
        let other = SignedCommand::sign(&k, Command { lmu_id: 5, ..open }, 11, 5_000);
        assert_eq!(v.check(Instant(0), &other.to_frame()), Err(Refusal::WrongLmu));
        // The genuine one, once.
        assert_eq!(v.check(Instant(100), &s.to_frame()), Ok(auto));
        assert_eq!(v.check(Instant(100), &s.to_frame()), Err(Refusal::Replayed));
        let older = SignedCommand::sign(&k, open, 9, 5_000);
        assert_eq!(v.check(Instant(100), &older.to_frame()), Err(Refusal::Replayed));
        // Expired.
        let late = SignedCommand::sign(&k, open, 12, 5_000);
        assert_eq!(v.check(Instant(5_001), &late.to_frame()), Err(Refusal::Expired));
        assert_eq!(v.stats.accepted, 1);
        assert!(v.stats.refused() > SIGNED_LEN as u64 * 8);
        // Malformed signature words name the word.
        let e = SignedCommand::parse(b"open 4 ctr=1 exp=2 sig=zz").unwrap_err();
        assert_eq!((e.word, e.kind), (5, CommandErrorKind::BadSignatureWords));
        assert_eq!(SignedCommand::parse(b"open 4 exp=2 ctr=1 sig=00").unwrap_err().word, 3);
        // Words between the command and its signature words are refused, not skipped.
        let sig = "ab".repeat(64);
        let e = SignedCommand::parse(format!("open 4 ctr=1 junk ctr=1 exp=2 sig={sig}").as_bytes()).unwrap_err();
        assert_eq!(e.kind, CommandErrorKind::Trailing);
    }
}
