//! Identities of the permissioned chain: ed25519 public keys with a role, registered at genesis or by a
//! permissioned transaction, revocable, each with its last nonce (replay protection).
//!
//! [`Registry::admit`] is what every application runs before looking at a payload: a malformed envelope, a bad
//! signature, an unknown or revoked signer, a nonce not above the signer's last, or an action the signer's role
//! may not take are each refused with their [`Refusal`]. Whether the action's subject is the signer itself (a
//! meter reads only for itself, a wallet moves only its own certificates) is checked by [`Registry::admit_for`].

use crate::app::{Envelope, Hash, Refusal};
use crate::ledger::codec::{Reader, Writer};
use crate::ledger::{LedgerError, domain, hash_parts};
use alloc::collections::BTreeMap;

/// Most identities a registry holds.
pub const MAX_IDENTITIES: usize = 1 << 20;

/// What an identity is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Registers and revokes identities; pays demand-response incentives.
    Operator = 1,
    Validator = 2,
    /// Signs its own energy readings.
    Meter = 3,
    /// A generating plant: registers generated energy.
    Plant = 4,
    /// Holds and moves its own certificates and balances.
    Wallet = 5,
}

impl Role {
    pub fn from_u8(v: u8) -> Option<Role> {
        Some(match v {
            1 => Role::Operator,
            2 => Role::Validator,
            3 => Role::Meter,
            4 => Role::Plant,
            5 => Role::Wallet,
            _ => return None,
        })
    }
    /// Whether this role may take `action`.
    pub fn permits(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Role::Operator, Action::Register | Action::Revoke | Action::Incentive)
                | (Role::Meter, Action::Reading)
                | (Role::Plant, Action::Generation | Action::Reading)
                | (Role::Wallet, Action::Transfer | Action::Order)
                | (Role::Validator, Action::Evidence)
        )
    }
}

/// Kinds of action a transaction takes (what permissions are checked against).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Register,
    Revoke,
    Reading,
    Generation,
    Transfer,
    Order,
    Incentive,
    Evidence,
}

/// One registered identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub role: Role,
    pub revoked: bool,
    /// Highest nonce accepted so far (0: none yet; nonces start at 1).
    pub last_nonce: u64,
}

/// The identities of a chain, ordered by key (canonical, so its hash is deterministic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    ids: BTreeMap<[u8; 32], Identity>,
}

impl Registry {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn get(&self, key: &[u8; 32]) -> Option<&Identity> {
        self.ids.get(key)
    }
    /// Registers `key` with `role`; refuses a key already registered (even revoked: keys are never reused).
    pub fn register(&mut self, key: [u8; 32], role: Role) -> Result<(), Refusal> {
        if self.ids.contains_key(&key) || self.ids.len() >= MAX_IDENTITIES {
            return Err(Refusal { code: 6, reason: "identity already registered" });
        }
        self.ids.insert(key, Identity { role, revoked: false, last_nonce: 0 });
        Ok(())
    }
    /// Revokes `key`; its later transactions are refused as from an unknown signer.
    pub fn revoke(&mut self, key: &[u8; 32]) -> Result<(), Refusal> {
        match self.ids.get_mut(key) {
            Some(i) if !i.revoked => {
                i.revoked = true;
                Ok(())
            }
            _ => Err(Refusal::UNKNOWN_SIGNER),
        }
    }
    /// Checks an envelope's signature, signer, nonce and permission without changing anything.
    pub fn admit(&self, env: &Envelope<'_>, action: Action) -> Result<Role, Refusal> {
        env.verify()?;
        let id = self.ids.get(&env.signer).filter(|i| !i.revoked).ok_or(Refusal::UNKNOWN_SIGNER)?;
        if env.nonce <= id.last_nonce {
            return Err(Refusal::REPLAYED);
        }
        if !id.role.permits(action) {
            return Err(Refusal::NOT_PERMITTED);
        }
        Ok(id.role)
    }
    /// [`Registry::admit`], and the action's subject must be the signer (own readings, own certificates).
    pub fn admit_for(&self, env: &Envelope<'_>, action: Action, subject: &[u8; 32]) -> Result<Role, Refusal> {
        let role = self.admit(env, action)?;
        if subject != &env.signer {
            return Err(Refusal::NOT_PERMITTED);
        }
        Ok(role)
    }
    /// Records an accepted envelope's nonce.
    pub fn bump_nonce(&mut self, signer: &[u8; 32], nonce: u64) {
        if let Some(i) = self.ids.get_mut(signer) {
            i.last_nonce = i.last_nonce.max(nonce);
        }
    }
    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.ids.len() as u32);
        for (k, i) in &self.ids {
            w.raw(k).u8(i.role as u8).u8(u8::from(i.revoked)).u64(i.last_nonce);
        }
    }
    /// Decodes a registry (keys strictly ascending, roles known).
    pub fn decode(r: &mut Reader<'_>) -> Result<Registry, LedgerError> {
        let n = r.u32()? as usize;
        if n > MAX_IDENTITIES {
            return Err(LedgerError::Malformed("too many identities"));
        }
        let mut ids = BTreeMap::new();
        let mut last: Option<[u8; 32]> = None;
        for _ in 0..n {
            let k = r.arr32()?;
            if last.is_some_and(|l| k <= l) {
                return Err(LedgerError::Malformed("identities not in ascending key order"));
            }
            last = Some(k);
            let role = Role::from_u8(r.u8()?).ok_or(LedgerError::Malformed("unknown role"))?;
            let revoked = r.flag()?;
            ids.insert(k, Identity { role, revoked, last_nonce: r.u64()? });
        }
        Ok(Registry { ids })
    }
    pub fn hash(&self) -> Hash {
        let mut w = Writer::default();
        self.encode(&mut w);
        hash_parts(domain::STATE, &[b"registry", &w.buf])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Key, seal};

    #[test]
    fn refuses_unknown_revoked_replayed_and_out_of_role() {
        let op = Key::from_bytes(&[1; 32]);
        let meter = Key::from_bytes(&[2; 32]);
        let mut reg = Registry::default();
        reg.register(op.verifying_key().to_bytes(), Role::Operator).unwrap();
        let tx = seal(&meter, 1, b"r").unwrap();
        let env = Envelope::parse(&tx).unwrap();
        assert_eq!(reg.admit(&env, Action::Reading), Err(Refusal::UNKNOWN_SIGNER));
        let mk = meter.verifying_key().to_bytes();
        reg.register(mk, Role::Meter).unwrap();
        assert_eq!(reg.admit_for(&env, Action::Reading, &mk), Ok(Role::Meter));
        assert_eq!(reg.admit_for(&env, Action::Reading, &[0; 32]), Err(Refusal::NOT_PERMITTED));
        assert_eq!(reg.admit(&env, Action::Transfer), Err(Refusal::NOT_PERMITTED));
        reg.bump_nonce(&mk, 1);
        assert_eq!(reg.admit(&env, Action::Reading), Err(Refusal::REPLAYED));
        reg.revoke(&mk).unwrap();
        let tx2 = seal(&meter, 2, b"r").unwrap();
        assert_eq!(reg.admit(&Envelope::parse(&tx2).unwrap(), Action::Reading), Err(Refusal::UNKNOWN_SIGNER));
        let mut w = Writer::default();
        reg.encode(&mut w);
        assert_eq!(Registry::decode(&mut Reader::new(&w.buf)).unwrap(), reg);
    }
}
