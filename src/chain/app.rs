//! `registry`: a small signed application the chain orders when no market runs (and the reference for how an
//! application plugs into the chain through [`Application`]). It keeps the identity registry (roles,
//! revocation, nonces), meter readings per meter (Wh) and balances per wallet (integer units).
//!
//! Payloads (little endian, one tag byte first):
//! `1 | key[32] | role u8` register (operator only), `2 | key[32]` revoke (operator only),
//! `3 | meter[32] | energy_wh u64` a reading (a meter, for itself only), `4 | to[32] | amount u64` a transfer
//! from the signer's own wallet.

use gridtwin_firmware::app::{Application, BlockInfo, Envelope, Hash, Refusal, TxOutcome, seal};
use gridtwin_firmware::ledger::codec::{Reader, Writer};
use gridtwin_firmware::ledger::identity::{Action, Registry, Role};
use gridtwin_firmware::ledger::{LedgerError, domain, hash_parts};
use std::collections::BTreeMap;

/// Name of this application in a ledger's genesis.
pub const APP_NAME: &str = "gridtwin-registry/v1";

pub const MALFORMED_PAYLOAD: Refusal = Refusal { code: Refusal::APP_BASE, reason: "malformed payload" };
pub const INSUFFICIENT_BALANCE: Refusal = Refusal { code: Refusal::APP_BASE + 1, reason: "insufficient balance" };

/// A decoded payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Register { key: [u8; 32], role: Role },
    Revoke { key: [u8; 32] },
    Reading { meter: [u8; 32], energy_wh: u64 },
    Transfer { to: [u8; 32], amount: u64 },
}

impl Op {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Op::Register { key, role } => w.u8(1).raw(key).u8(*role as u8),
            Op::Revoke { key } => w.u8(2).raw(key),
            Op::Reading { meter, energy_wh } => w.u8(3).raw(meter).u64(*energy_wh),
            Op::Transfer { to, amount } => w.u8(4).raw(to).u64(*amount),
        };
        w.buf
    }
    pub fn decode(b: &[u8]) -> Result<Op, Refusal> {
        let mut r = Reader::new(b);
        let f = |_: LedgerError| MALFORMED_PAYLOAD;
        let op = match r.u8().map_err(f)? {
            1 => Op::Register {
                key: r.arr32().map_err(f)?,
                role: Role::from_u8(r.u8().map_err(f)?).ok_or(MALFORMED_PAYLOAD)?,
            },
            2 => Op::Revoke { key: r.arr32().map_err(f)? },
            3 => Op::Reading { meter: r.arr32().map_err(f)?, energy_wh: r.u64().map_err(f)? },
            4 => Op::Transfer { to: r.arr32().map_err(f)?, amount: r.u64().map_err(f)? },
            _ => return Err(MALFORMED_PAYLOAD),
        };
        r.finish().map_err(f)?;
        Ok(op)
    }
    fn action(&self) -> Action {
        match self {
            Op::Register { .. } => Action::Register,
            Op::Revoke { .. } => Action::Revoke,
            Op::Reading { .. } => Action::Reading,
            Op::Transfer { .. } => Action::Transfer,
        }
    }
}

/// The application's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub registry: Registry,
    pub balances: BTreeMap<[u8; 32], u64>,
    pub readings_wh: BTreeMap<[u8; 32], u64>,
}

impl State {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.registry.encode(&mut w);
        for m in [&self.balances, &self.readings_wh] {
            w.u32(m.len() as u32);
            for (k, v) in m {
                w.raw(k).u64(*v);
            }
        }
        w.buf
    }
    pub fn decode(b: &[u8]) -> Result<State, LedgerError> {
        let mut r = Reader::new(b);
        let registry = Registry::decode(&mut r)?;
        let mut maps = [BTreeMap::new(), BTreeMap::new()];
        for m in &mut maps {
            let n = r.u32()? as usize;
            if n > r.remaining() / 40 {
                return Err(LedgerError::Malformed("map longer than its bytes"));
            }
            let mut last: Option<[u8; 32]> = None;
            for _ in 0..n {
                let k = r.arr32()?;
                if last.is_some_and(|l| k <= l) {
                    return Err(LedgerError::Malformed("keys not ascending"));
                }
                last = Some(k);
                m.insert(k, r.u64()?);
            }
        }
        r.finish()?;
        let [balances, readings_wh] = maps;
        Ok(State { registry, balances, readings_wh })
    }
    pub fn root(&self) -> Hash {
        hash_parts(domain::STATE, &[APP_NAME.as_bytes(), &self.encode()])
    }

    fn apply(&mut self, tx: &[u8]) -> TxOutcome {
        let env = Envelope::parse(tx)?;
        let op = Op::decode(env.payload)?;
        match op {
            Op::Reading { meter, .. } => self.registry.admit_for(&env, op.action(), &meter)?,
            _ => self.registry.admit(&env, op.action())?,
        };
        match op {
            Op::Register { key, role } => self.registry.register(key, role)?,
            Op::Revoke { key } => self.registry.revoke(&key)?,
            Op::Reading { meter, energy_wh } => {
                let e = self.readings_wh.entry(meter).or_default();
                *e = e.saturating_add(energy_wh);
            }
            Op::Transfer { to, amount } => {
                let from = self.balances.get(&env.signer).copied().unwrap_or(0);
                if from < amount {
                    return Err(INSUFFICIENT_BALANCE);
                }
                self.balances.insert(env.signer, from - amount);
                let t = self.balances.entry(to).or_default();
                *t = t.saturating_add(amount);
            }
        }
        self.registry.bump_nonce(&env.signer, env.nonce);
        Ok(())
    }
}

/// The registry application: committed state (what `check_tx` sees) and working state (a block in progress).
#[derive(Clone, Debug)]
pub struct RegistryApp {
    committed: State,
    working: State,
}

impl RegistryApp {
    pub fn from_state(s: State) -> Self {
        RegistryApp { committed: s.clone(), working: s }
    }
    /// Builds the application from its genesis bytes (a canonical [`State`]).
    pub fn from_genesis(bytes: &[u8]) -> Result<Self, LedgerError> {
        Ok(Self::from_state(State::decode(bytes)?))
    }
    pub fn state(&self) -> &State {
        &self.committed
    }
    pub fn root(&self) -> Hash {
        self.committed.root()
    }
}

impl Application for RegistryApp {
    fn check_tx(&self, tx: &[u8]) -> TxOutcome {
        self.committed.clone().apply(tx)
    }
    fn execute_block(&mut self, _block: &BlockInfo, txs: &[&[u8]]) -> Vec<TxOutcome> {
        txs.iter().map(|t| self.working.apply(t)).collect()
    }
    fn commit(&mut self) -> Hash {
        self.committed = self.working.clone();
        self.committed.root()
    }
}

/// Signs an [`Op`] (helper for clients and tests).
pub fn signed(key: &gridtwin_firmware::app::Key, nonce: u64, op: Op) -> Vec<u8> {
    seal(key, nonce, &op.to_bytes()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridtwin_firmware::app::Key;

    #[test]
    fn bad_transactions_are_refused_with_their_reason() {
        let op = Key::from_bytes(&[1; 32]);
        let meter = Key::from_bytes(&[2; 32]);
        let wallet = Key::from_bytes(&[3; 32]);
        let mut s = State::default();
        s.registry.register(op.verifying_key().to_bytes(), Role::Operator).unwrap();
        s.registry.register(meter.verifying_key().to_bytes(), Role::Meter).unwrap();
        s.registry.register(wallet.verifying_key().to_bytes(), Role::Wallet).unwrap();
        s.balances.insert(wallet.verifying_key().to_bytes(), 10);
        let mut app = RegistryApp::from_genesis(&s.encode()).unwrap();
        let mk = meter.verifying_key().to_bytes();
        let good = signed(&meter, 1, Op::Reading { meter: mk, energy_wh: 5 });
        let mut bad_sig = good.clone();
        *bad_sig.last_mut().unwrap() ^= 1;
        let other = signed(&meter, 2, Op::Reading { meter: [9; 32], energy_wh: 5 });
        let meter_pays = signed(&meter, 3, Op::Transfer { to: mk, amount: 1 });
        let too_much = signed(&wallet, 1, Op::Transfer { to: mk, amount: 11 });
        let b = BlockInfo { height: 1, time_ns: 1, proposer: 0 };
        let out = app.execute_block(&b, &[&good, &good, &bad_sig, &other, &meter_pays, &too_much, b"junk"]);
        assert_eq!(
            out,
            vec![
                Ok(()),
                Err(Refusal::REPLAYED),
                Err(Refusal::BAD_SIGNATURE),
                Err(Refusal::NOT_PERMITTED),
                Err(Refusal::NOT_PERMITTED),
                Err(INSUFFICIENT_BALANCE),
                Err(Refusal::MALFORMED)
            ]
        );
        let root = app.commit();
        assert_eq!(app.state().readings_wh[&mk], 5);
        assert_eq!(RegistryApp::from_genesis(&app.state().encode()).unwrap().root(), root);
    }
}
