//! What one party reads from a private ledger: the sealed readings and claims it holds a key for.
//!
//! A validator re-executes the ledger without opening anything (see [`super::private`]); the owner of a wallet,
//! the grid operator and the auditors open the boxes addressed to them with their X25519 keys. Opening checks
//! each opening against the commitment the ledger holds, so a box that decrypts to anything else is counted as
//! unreadable, not believed.

use super::app::{Genesis, MarketApp, MoveKind, Role, Tx, sealed_aad};
use super::certs::Range;
use super::private::{self, Opening};
use gridtwin_firmware::app::Envelope;
use std::collections::BTreeMap;

/// The openings one reader holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealedView {
    /// (wallet, slot) -> consumption Wh of the main meter.
    pub consumed_wh: BTreeMap<(u32, u32), u64>,
    /// (wallet, slot) -> Wh of the flexible-load sub-meter.
    pub flex_wh: BTreeMap<(u32, u32), u64>,
    /// (wallet, slot) -> Wh claimed from certificates (the rest of the consumption is grid import).
    pub claimed_wh: BTreeMap<(u32, u32), u64>,
    /// Sealed transactions with a box for the reader that did not open to their commitment.
    pub unreadable: u64,
    /// Sealed transactions without a box for the reader.
    pub not_addressed: u64,
    /// Sealed readings and sealed claims read, and their bytes (signed envelopes), whoever they address.
    pub sealed_txs: [u64; 2],
    pub sealed_bytes: [u64; 2],
}

impl SealedView {
    /// Grid import of (wallet, slot): consumption not covered by the claim (when both are readable).
    pub fn import_wh(&self, w: u32, slot: u32) -> Option<u64> {
        Some(self.consumed_wh.get(&(w, slot))?.saturating_sub(*self.claimed_wh.get(&(w, slot))?))
    }
}

/// Opens, as participant `reader` (its name in the genesis) with its derived key, every sealed transaction of
/// `txs` (signed envelopes in ledger order). `None` when the genesis has no such participant.
pub fn open_as<'a>(g: &Genesis, txs: impl IntoIterator<Item = &'a [u8]>, reader: &str) -> Option<SealedView> {
    let me = g.participants.iter().position(|p| p.name == reader)? as u32;
    let secret = private::box_secret(&g.domain, reader);
    let signers: BTreeMap<[u8; 32], Role> = g.participants.iter().map(|p| (p.key, p.role)).collect();
    let mut v = SealedView::default();
    for t in txs {
        let Ok(env) = Envelope::parse(t) else { continue };
        let Some(&role) = signers.get(&env.signer) else { continue };
        let Ok(tx) = Tx::decode(env.payload) else { continue };
        let (kind, slot, commitment, sealed) = match &tx {
            Tx::SealedReading { slot, commitment, sealed } => (10, *slot, commitment, sealed),
            Tx::SealedClaim { slot, commitment, sealed, .. } => (11, *slot, commitment, sealed),
            _ => continue,
        };
        let k = (kind == 11) as usize;
        v.sealed_txs[k] += 1;
        v.sealed_bytes[k] += t.len() as u64;
        if !sealed.boxes.iter().any(|b| b.recipient == me) {
            v.not_addressed += 1;
            continue;
        }
        let aad = sealed_aad(kind, slot, commitment);
        let Some(Opening { wh, .. }) = private::open(sealed, me, &secret, &aad, commitment) else {
            v.unreadable += 1;
            continue;
        };
        match (kind, role) {
            (10, Role::Meter(w)) => v.consumed_wh.insert((w, slot), wh),
            (10, Role::FlexMeter(w)) => v.flex_wh.insert((w, slot), wh),
            (11, Role::Owner(w)) => v.claimed_wh.insert((w, slot), wh),
            _ => None,
        };
    }
    Some(v)
}

/// The certificate ranges a sealed claim of `claimed_wh` consumed: the first `claimed_wh` Wh of what the claim
/// retired for (wallet, slot), in the order the ledger recorded them (the rest was spilled).
pub fn consumed_ranges(app: &MarketApp, wallet: u32, slot: u32, claimed_wh: u64) -> Vec<Range> {
    let mut left = claimed_wh;
    let mut out = Vec::new();
    for m in &app.log {
        if left == 0 {
            break;
        }
        if m.kind != MoveKind::SealedClaim || m.to != wallet || m.range.slot != slot {
            continue;
        }
        let take = m.range.len.min(left);
        out.push(Range { len: take, ..m.range });
        left -= take;
    }
    out
}
