//! kWh certificates and the wallets that hold them: integer Wh ranges with an identity.
//!
//! Each plant's metered production in a settlement slot mints a range of Wh serials `[0, wh)` of (plant, slot);
//! the kWh with serial `k` of that range carries the code `{domain}-{plant}-{slot}-{k}` and covers Wh
//! `[1000 k, 1000 k + 1000)`. Wallets hold ranges, split them by transferring part of one, merge adjacent pieces
//! of the same (plant, slot) back into one range when they meet again, and retire them with a claim against
//! their owner's metered consumption of the same slot. A range never changes its (plant, slot, serials), so
//! every Wh keeps its origin however often it moves; a claimed range leaves the wallets for good, so nothing is
//! claimed twice. Invariant after every operation: `minted_wh = held_wh + claimed_wh`.

use std::collections::BTreeMap;

/// A range of certificate serials (Wh) of one plant and slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    pub plant: u32,
    pub slot: u32,
    pub start: u64,
    pub len: u64,
}

impl Range {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// Key of a held range: (wallet, slot, plant, first serial).
type HeldKey = (u32, u32, u32, u64);

/// Why a certificate operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("wallet {wallet} holds {held} Wh of slot {slot} certificates, {wanted} Wh asked")]
    Insufficient { wallet: u32, slot: u32, held: u64, wanted: u64 },
    #[error("wallet {wallet} does not hold Wh {start}..{end} of plant {plant}, slot {slot}")]
    NotHeld { wallet: u32, plant: u32, slot: u32, start: u64, end: u64 },
    #[error("zero-volume operation")]
    Zero,
    #[error("volume overflow")]
    Overflow,
}

/// The certificate registry: what was minted, who holds what, what was claimed by whom.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    /// (plant, slot) -> Wh minted so far (the next serial).
    minted: BTreeMap<(u32, u32), u64>,
    /// (wallet, slot, plant, start) -> len.
    held: BTreeMap<(u32, u32, u32, u64), u64>,
    /// (plant, slot, start) -> (len, claiming wallet).
    claimed: BTreeMap<(u32, u32, u64), (u64, u32)>,
    /// (wallet, slot) -> Wh claimed.
    claimed_by: BTreeMap<(u32, u32), u64>,
    /// (wallet, slot) -> Wh held.
    held_by: BTreeMap<(u32, u32), u64>,
    pub minted_wh: u64,
    pub held_wh: u64,
    pub claimed_wh: u64,
}

impl Registry {
    /// Mints `wh` new Wh of (plant, slot) into `wallet`; returns the new range.
    pub fn mint(&mut self, plant: u32, slot: u32, wallet: u32, wh: u64) -> Result<Range, CertError> {
        if wh == 0 {
            return Err(CertError::Zero);
        }
        let next = self.minted.entry((plant, slot)).or_insert(0);
        let start = *next;
        *next = start.checked_add(wh).ok_or(CertError::Overflow)?;
        self.minted_wh = self.minted_wh.checked_add(wh).ok_or(CertError::Overflow)?;
        let r = Range { plant, slot, start, len: wh };
        self.insert(wallet, r);
        Ok(r)
    }

    /// Wh minted for (plant, slot).
    pub fn minted_of(&self, plant: u32, slot: u32) -> u64 {
        self.minted.get(&(plant, slot)).copied().unwrap_or(0)
    }

    /// Wh of `slot` certificates `wallet` holds.
    pub fn held_in_slot(&self, wallet: u32, slot: u32) -> u64 {
        self.held_by.get(&(wallet, slot)).copied().unwrap_or(0)
    }

    /// Wh `wallet` claimed against `slot`.
    pub fn claimed_in_slot(&self, wallet: u32, slot: u32) -> u64 {
        self.claimed_by.get(&(wallet, slot)).copied().unwrap_or(0)
    }

    /// Wh of (plant, slot) certificates `wallet` holds.
    pub fn held_of(&self, wallet: u32, slot: u32, plant: u32) -> u64 {
        self.held.range((wallet, slot, plant, 0)..=(wallet, slot, plant, u64::MAX)).map(|(_, &l)| l).sum()
    }

    /// The ranges `wallet` holds (in key order).
    pub fn holdings(&self, wallet: u32) -> Vec<Range> {
        self.held
            .range((wallet, 0, 0, 0)..=(wallet, u32::MAX, u32::MAX, u64::MAX))
            .map(|(&(_, slot, plant, start), &len)| Range { plant, slot, start, len })
            .collect()
    }

    /// Every held range with its wallet, and every claimed range with its claimant (for audits).
    pub fn all_held(&self) -> impl Iterator<Item = (u32, Range)> + '_ {
        self.held.iter().map(|(&(w, slot, plant, start), &len)| (w, Range { plant, slot, start, len }))
    }
    pub fn all_claimed(&self) -> impl Iterator<Item = (u32, Range)> + '_ {
        self.claimed.iter().map(|(&(plant, slot, start), &(len, w))| (w, Range { plant, slot, start, len }))
    }
    pub fn all_minted(&self) -> impl Iterator<Item = ((u32, u32), u64)> + '_ {
        self.minted.iter().map(|(&k, &v)| (k, v))
    }

    fn insert(&mut self, wallet: u32, r: Range) {
        let (mut start, mut len) = (r.start, r.len);
        // Merge with the range just before and just after (same wallet, plant and slot).
        if let Some((&(w, s, p, ps), &pl)) = self.held.range(..(wallet, r.slot, r.plant, start)).next_back()
            && (w, s, p) == (wallet, r.slot, r.plant)
            && ps + pl == start
        {
            self.held.remove(&(w, s, p, ps));
            start = ps;
            len += pl;
        }
        if let Some(nl) = self.held.remove(&(wallet, r.slot, r.plant, r.start + r.len)) {
            len += nl;
        }
        self.held.insert((wallet, r.slot, r.plant, start), len);
        *self.held_by.entry((wallet, r.slot)).or_insert(0) += r.len;
        self.held_wh += r.len;
    }

    /// Takes up to `wh` from `wallet`'s ranges of `slot` (of `plant` only, when given), lowest (plant, start)
    /// first, but the plants in `first` before any other; the caller has checked the volume is there.
    fn take(&mut self, wallet: u32, slot: u32, plant: Option<u32>, first: &[u32], wh: u64) -> Vec<Range> {
        let mut out = Vec::new();
        let mut left = wh;
        let mut order: Vec<Option<u32>> = match plant {
            Some(p) => vec![Some(p)],
            None => first.iter().map(|&p| Some(p)).collect(),
        };
        if plant.is_none() {
            order.push(None);
        }
        for which in order {
            if left == 0 {
                break;
            }
            let (lo, hi) = match which {
                Some(p) => ((wallet, slot, p, 0), (wallet, slot, p, u64::MAX)),
                None => ((wallet, slot, 0, 0), (wallet, slot, u32::MAX, u64::MAX)),
            };
            let keys: Vec<((u32, u32, u32, u64), u64)> = {
                let mut v = Vec::new();
                let mut acc = 0u64;
                for (&k, &l) in self.held.range(lo..=hi) {
                    v.push((k, l));
                    acc += l;
                    if acc >= left {
                        break;
                    }
                }
                v
            };
            for (k, l) in keys {
                if left == 0 {
                    break;
                }
                let q = l.min(left);
                self.held.remove(&k);
                if q < l {
                    self.held.insert((k.0, k.1, k.2, k.3 + q), l - q);
                }
                left -= q;
                out.push(Range { plant: k.2, slot: k.1, start: k.3, len: q });
            }
        }
        let taken = wh - left;
        *self.held_by.entry((wallet, slot)).or_insert(0) -= taken;
        self.held_wh -= taken;
        out
    }

    /// Moves `wh` of `slot` certificates (of `plant`, when given) from one wallet to another, lowest serials
    /// first (splitting the last range); returns the ranges moved.
    pub fn transfer(
        &mut self,
        from: u32,
        to: u32,
        slot: u32,
        plant: Option<u32>,
        wh: u64,
    ) -> Result<Vec<Range>, CertError> {
        if wh == 0 {
            return Err(CertError::Zero);
        }
        let held = match plant {
            Some(p) => self.held_of(from, slot, p),
            None => self.held_in_slot(from, slot),
        };
        if held < wh {
            return Err(CertError::Insufficient { wallet: from, slot, held, wanted: wh });
        }
        let moved = self.take(from, slot, plant, &[], wh);
        for r in &moved {
            self.insert(to, *r);
        }
        Ok(moved)
    }

    /// Moves exactly the range `r` (which `from` must hold inside one of its ranges) to `to`.
    pub fn transfer_range(&mut self, from: u32, to: u32, r: Range) -> Result<(), CertError> {
        self.split_out(from, r)?;
        self.held_wh -= r.len;
        *self.held_by.entry((from, r.slot)).or_insert(0) -= r.len;
        self.insert(to, r);
        Ok(())
    }

    /// Splits `wallet`'s range containing serial `at` of (plant, slot) into two ranges at `at` (identity kept;
    /// a later insert next to either piece merges them again).
    pub fn split(&mut self, wallet: u32, plant: u32, slot: u32, at: u64) -> Result<(), CertError> {
        let (k, l) = self.containing(wallet, plant, slot, at, 1)?;
        if k.3 < at {
            self.held.insert(k, at - k.3);
            self.held.insert((wallet, slot, plant, at), k.3 + l - at);
        }
        Ok(())
    }

    fn containing(
        &self,
        wallet: u32,
        plant: u32,
        slot: u32,
        start: u64,
        len: u64,
    ) -> Result<(HeldKey, u64), CertError> {
        let not_held = CertError::NotHeld { wallet, plant, slot, start, end: start.saturating_add(len) };
        let (&k, &l) = self.held.range(..=(wallet, slot, plant, start)).next_back().ok_or(not_held.clone())?;
        if (k.0, k.1, k.2) != (wallet, slot, plant) || k.3 + l < start.saturating_add(len) || len == 0 {
            return Err(not_held);
        }
        Ok((k, l))
    }

    /// Removes range `r` from `wallet` (inside one held range), leaving the pieces before and after.
    fn split_out(&mut self, wallet: u32, r: Range) -> Result<(), CertError> {
        let (k, l) = self.containing(wallet, r.plant, r.slot, r.start, r.len)?;
        self.held.remove(&k);
        if k.3 < r.start {
            self.held.insert(k, r.start - k.3);
        }
        if r.end() < k.3 + l {
            self.held.insert((wallet, r.slot, r.plant, r.end()), k.3 + l - r.end());
        }
        Ok(())
    }

    /// Claims `wh` of `wallet`'s `slot` certificates (the plants in `first` before any other, then lowest
    /// (plant, serial)), retiring them; returns the ranges claimed. The caller checks the metered consumption.
    pub fn claim(&mut self, wallet: u32, slot: u32, wh: u64, first: &[u32]) -> Result<Vec<Range>, CertError> {
        if wh == 0 {
            return Err(CertError::Zero);
        }
        let held = self.held_in_slot(wallet, slot);
        if held < wh {
            return Err(CertError::Insufficient { wallet, slot, held, wanted: wh });
        }
        let taken = self.take(wallet, slot, None, first, wh);
        for r in &taken {
            self.claimed.insert((r.plant, r.slot, r.start), (r.len, wallet));
        }
        *self.claimed_by.entry((wallet, slot)).or_insert(0) += wh;
        self.claimed_wh += wh;
        Ok(taken)
    }

    /// Feeds a canonical walk of the registry to `put` (for the state root).
    pub fn digest_into(&self, put: &mut dyn FnMut(&[u8])) {
        put(&(self.minted.len() as u64).to_le_bytes());
        for (&(p, s), &n) in &self.minted {
            put(&[p.to_le_bytes(), s.to_le_bytes()].concat());
            put(&n.to_le_bytes());
        }
        put(&(self.held.len() as u64).to_le_bytes());
        for (&(w, s, p, st), &l) in &self.held {
            put(&[w.to_le_bytes(), s.to_le_bytes(), p.to_le_bytes()].concat());
            put(&st.to_le_bytes());
            put(&l.to_le_bytes());
        }
        put(&(self.claimed.len() as u64).to_le_bytes());
        for (&(p, s, st), &(l, w)) in &self.claimed {
            put(&[p.to_le_bytes(), s.to_le_bytes(), w.to_le_bytes()].concat());
            put(&st.to_le_bytes());
            put(&l.to_le_bytes());
        }
    }

    /// Checks the registry's own invariants from scratch (tests and audits): totals add up, no two ranges of
    /// the same (plant, slot) overlap among held and claimed, and every range lies inside what was minted.
    pub fn audit(&self) -> Result<(), String> {
        let mut by_ps: BTreeMap<(u32, u32), Vec<(u64, u64)>> = BTreeMap::new();
        let (mut held, mut claimed) = (0u64, 0u64);
        for (_, r) in self.all_held() {
            held += r.len;
            by_ps.entry((r.plant, r.slot)).or_default().push((r.start, r.end()));
        }
        for (_, r) in self.all_claimed() {
            claimed += r.len;
            by_ps.entry((r.plant, r.slot)).or_default().push((r.start, r.end()));
        }
        if held != self.held_wh || claimed != self.claimed_wh {
            return Err(format!(
                "totals drifted: held {held} vs {}, claimed {claimed} vs {}",
                self.held_wh, self.claimed_wh
            ));
        }
        if self.minted_wh != held + claimed {
            return Err(format!("minted {} != held {held} + claimed {claimed}", self.minted_wh));
        }
        for ((p, s), mut v) in by_ps {
            v.sort();
            let minted = self.minted_of(p, s);
            let mut covered = 0;
            for w in v.windows(2) {
                if w[0].1 > w[1].0 {
                    return Err(format!("plant {p} slot {s}: ranges overlap at Wh {}", w[1].0));
                }
            }
            for (a, b) in &v {
                covered += b - a;
                if *b > minted {
                    return Err(format!("plant {p} slot {s}: range beyond the {minted} Wh minted"));
                }
            }
            if covered != minted {
                return Err(format!("plant {p} slot {s}: {covered} Wh accounted of {minted} minted"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_merge_and_keep_identity() {
        let mut r = Registry::default();
        r.mint(7, 3, 1, 2500).unwrap();
        let moved = r.transfer(1, 2, 3, Some(7), 1000).unwrap();
        assert_eq!(moved, vec![Range { plant: 7, slot: 3, start: 0, len: 1000 }]);
        r.transfer(2, 1, 3, None, 1000).unwrap();
        // Back in one piece.
        assert_eq!(r.holdings(1), vec![Range { plant: 7, slot: 3, start: 0, len: 2500 }]);
        r.split(1, 7, 3, 400).unwrap();
        assert_eq!(r.holdings(1).len(), 2);
        r.transfer_range(1, 2, Range { plant: 7, slot: 3, start: 100, len: 50 }).unwrap();
        assert_eq!(r.held_of(1, 3, 7), 2450);
        let c = r.claim(2, 3, 50, &[]).unwrap();
        assert_eq!(c, vec![Range { plant: 7, slot: 3, start: 100, len: 50 }]);
        assert!(r.claim(2, 3, 1, &[]).is_err(), "nothing left to claim twice");
        assert_eq!(r.minted_wh, r.held_wh + r.claimed_wh);
        r.audit().unwrap();
    }
}
