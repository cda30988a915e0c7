//! The seam between an orderer and the application it orders, in the style of ABCI.
//!
//! The private chain (`consensus`, `ledger`) orders transactions and the energy market executes them; until a
//! chain runs, a trusted sequencer stands in behind the same interface. The orderer never looks inside a
//! transaction: it asks the application to [`Application::check_tx`] one (mempool admission), to
//! [`Application::execute_block`] an ordered block, and to [`Application::commit`], which returns the 32-byte
//! state root that the next block header carries. Any validator re-executing the same blocks from genesis gets
//! the same roots: the application is deterministic (no clock, no randomness, no floats in state).
//!
//! Every transaction travels in a signed [`Envelope`] (ed25519 over a domain-separated message), so the
//! application knows who sent it and can enforce per-role permissions; the nonce gives replay protection
//! (the application keeps the last nonce per signer in its state).
//!
//! Canonical envelope bytes (little endian):
//! `signer: [u8; 32] | nonce: u64 | payload_len: u32 | payload | signature: [u8; 64]`.
//! The signature covers `DOMAIN_TX | signer | nonce | payload_len | payload`.

use alloc::vec::Vec;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// 32-byte hash (state roots, transaction roots, block hashes).
pub type Hash = [u8; 32];

/// Domain separator of transaction signatures.
pub const DOMAIN_TX: &[u8] = b"gridtwin/tx/v1\0";

/// Largest payload an envelope may carry (bounds every decoder).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Bytes an envelope adds around its payload.
pub const ENVELOPE_OVERHEAD_BYTES: usize = 32 + 8 + 4 + 64;

/// What the orderer tells the application about the block being executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub height: u64,
    /// Block time, integer nanoseconds since the run's start (the proposer's `now`, agreed by consensus).
    pub time_ns: u64,
    /// Index of the proposing validator in the validator set (0 for a sequencer).
    pub proposer: u32,
}

/// Why a transaction was refused: a stable code for counting and a human reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
}

impl Refusal {
    pub const MALFORMED: Refusal = Refusal { code: 1, reason: "malformed envelope" };
    pub const BAD_SIGNATURE: Refusal = Refusal { code: 2, reason: "bad signature" };
    pub const UNKNOWN_SIGNER: Refusal = Refusal { code: 3, reason: "unknown or revoked signer" };
    pub const REPLAYED: Refusal = Refusal { code: 4, reason: "nonce not above the signer's last" };
    pub const NOT_PERMITTED: Refusal = Refusal { code: 5, reason: "not permitted for the signer's role" };
    /// First code an application may use for its own reasons.
    pub const APP_BASE: u16 = 100;
}

/// Outcome of one transaction in an executed block (refused transactions change nothing).
pub type TxOutcome = Result<(), Refusal>;

/// A deterministic state machine that an orderer drives.
pub trait Application {
    /// Checks `tx` against the committed state without changing it.
    fn check_tx(&self, tx: &[u8]) -> TxOutcome;
    /// Executes an ordered block on the working state; one outcome per transaction, in order.
    fn execute_block(&mut self, block: &BlockInfo, txs: &[&[u8]]) -> Vec<TxOutcome>;
    /// Commits the working state and returns its root.
    fn commit(&mut self) -> Hash;
}

/// A signed transaction, borrowed from its bytes (zero copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub signer: [u8; 32],
    pub nonce: u64,
    pub payload: &'a [u8],
    pub signature: [u8; 64],
}

impl<'a> Envelope<'a> {
    /// Parses canonical envelope bytes; never panics, refuses trailing bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>, Refusal> {
        if bytes.len() < ENVELOPE_OVERHEAD_BYTES {
            return Err(Refusal::MALFORMED);
        }
        let mut signer = [0u8; 32];
        signer.copy_from_slice(&bytes[..32]);
        let mut n = [0u8; 8];
        n.copy_from_slice(&bytes[32..40]);
        let mut l = [0u8; 4];
        l.copy_from_slice(&bytes[40..44]);
        let len = u32::from_le_bytes(l) as usize;
        if len > MAX_PAYLOAD_BYTES || bytes.len() != ENVELOPE_OVERHEAD_BYTES + len {
            return Err(Refusal::MALFORMED);
        }
        let payload = &bytes[44..44 + len];
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[44 + len..]);
        Ok(Envelope { signer, nonce: u64::from_le_bytes(n), payload, signature })
    }

    /// Checks the signature against `signer` (does not know whether the signer is registered).
    pub fn verify(&self) -> Result<(), Refusal> {
        let key = VerifyingKey::from_bytes(&self.signer).map_err(|_| Refusal::BAD_SIGNATURE)?;
        let msg = signed_message(&self.signer, self.nonce, self.payload);
        key.verify(&msg, &Signature::from_bytes(&self.signature)).map_err(|_| Refusal::BAD_SIGNATURE)
    }
}

fn signed_message(signer: &[u8; 32], nonce: u64, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN_TX.len() + 44 + payload.len());
    m.extend_from_slice(DOMAIN_TX);
    m.extend_from_slice(signer);
    m.extend_from_slice(&nonce.to_le_bytes());
    m.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    m.extend_from_slice(payload);
    m
}

/// Signs `payload` with `key` at `nonce` and returns the canonical envelope bytes.
///
/// Payloads above [`MAX_PAYLOAD_BYTES`] are refused rather than truncated.
pub fn seal(key: &SigningKey, nonce: u64, payload: &[u8]) -> Result<Vec<u8>, Refusal> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Refusal::MALFORMED);
    }
    let signer = key.verifying_key().to_bytes();
    let sig = key.sign(&signed_message(&signer, nonce, payload)).to_bytes();
    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD_BYTES + payload.len());
    out.extend_from_slice(&signer);
    out.extend_from_slice(&nonce.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&sig);
    Ok(out)
}

pub use ed25519_dalek::SigningKey as Key;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_envelopes_verify_and_any_flipped_bit_is_refused() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let bytes = seal(&key, 5, b"mint 1000 Wh").unwrap();
        let env = Envelope::parse(&bytes).unwrap();
        assert_eq!(env.nonce, 5);
        assert_eq!(env.payload, b"mint 1000 Wh");
        assert!(env.verify().is_ok());
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let ok = Envelope::parse(&b).and_then(|e| e.verify());
            assert!(ok.is_err(), "flipped bit {bit} went unnoticed");
        }
        assert_eq!(Envelope::parse(&bytes[..bytes.len() - 1]), Err(Refusal::MALFORMED));
    }
}
