//! The ledger of the private permissioned chain: canonical encodings of blocks, headers, votes, commits and
//! equivocation evidence; domain-separated SHA-256 hashes and Merkle trees; validator sets; and the validation
//! of blocks and commits (more than 2/3 of the voting power in valid ed25519 signatures). `no_std` + `alloc`.
//!
//! Every decoder takes bytes from the wire or from disk, never panics, refuses trailing bytes, non-canonical
//! flags and lengths above their limits, so that every bit of a stored block is covered either by a hash or
//! by a signature: a single flipped bit anywhere is detected (`gridtwin ledger verify`).
//!
//! Chain shape (Tendermint-like): block `h` carries the hash of block `h-1` (block 1 carries the chain id, the
//! hash of the genesis file), the Merkle root of its transactions and of its evidence, the hash of the
//! validator set, and the application's state root after executing blocks `1..h-1` (the root a block's
//! execution produces is carried by the next header, as in Tendermint). A block is final with a [`Commit`]:
//! precommit signatures of more than 2/3 of the voting power on the block's hash at one round.
//!
//! Times are integer nanoseconds since the run's start; voting power is a plain integer.

pub mod codec;
pub mod identity;

use crate::app::Hash;
use alloc::vec::Vec;
use codec::{Reader, Writer};
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _};
use sha2::{Digest as _, Sha256};

/// Most validators in a set (bounds every per-validator loop and table).
pub const MAX_VALIDATORS: usize = 1024;
/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 100_000;
/// Most evidence items in one block.
pub const MAX_BLOCK_EVIDENCE: usize = 1024;
/// Largest encoded block.
pub const MAX_BLOCK_BYTES: usize = 16 << 20;

/// Domain separators: every hash and signature in the ledger starts with one, so no two kinds of object
/// can ever be confused.
pub mod domain {
    pub const LEAF: &[u8] = b"gridtwin/merkle-leaf/v1\0";
    pub const NODE: &[u8] = b"gridtwin/merkle-node/v1\0";
    pub const EMPTY: &[u8] = b"gridtwin/merkle-empty/v1\0";
    pub const HEADER: &[u8] = b"gridtwin/header/v1\0";
    pub const VALSET: &[u8] = b"gridtwin/validator-set/v1\0";
    pub const VOTE: &[u8] = b"gridtwin/vote/v1\0";
    pub const PROPOSAL: &[u8] = b"gridtwin/proposal/v1\0";
    pub const GENESIS: &[u8] = b"gridtwin/genesis/v1\0";
    pub const EVIDENCE: &[u8] = b"gridtwin/evidence/v1\0";
    pub const STATE: &[u8] = b"gridtwin/state/v1\0";
}

/// Why bytes or a block were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// Ran past the end of the bytes.
    Truncated,
    /// A field is not canonical (flag, length, trailing bytes, order).
    Malformed(&'static str),
    /// A field disagrees with what it must equal (the name says which).
    Mismatch(&'static str),
    /// A validator index outside the set.
    UnknownValidator(u32),
    /// A validator signed twice in one commit (or indices are not ascending).
    DuplicateSigner(u32),
    /// A signature does not verify (validator index, or `u32::MAX` for the proposer of a proposal).
    BadSignature(u32),
    /// The signatures carry no more than 2/3 of the voting power.
    InsufficientPower { signed: u64, total: u64 },
    /// A validator set is empty, too large, has a duplicate key or a zero power.
    BadValidatorSet(&'static str),
    /// Evidence that is not two conflicting votes of one validator.
    BadEvidence(&'static str),
}

impl core::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LedgerError::Truncated => write!(f, "truncated"),
            LedgerError::Malformed(w) => write!(f, "malformed: {w}"),
            LedgerError::Mismatch(w) => write!(f, "{w} does not match"),
            LedgerError::UnknownValidator(i) => write!(f, "validator {i} is not in the set"),
            LedgerError::DuplicateSigner(i) => write!(f, "validator {i} signed twice or out of order"),
            LedgerError::BadSignature(i) if *i == u32::MAX => write!(f, "bad proposer signature"),
            LedgerError::BadSignature(i) => write!(f, "bad signature of validator {i}"),
            LedgerError::InsufficientPower { signed, total } => {
                write!(f, "commit holds {signed} of {total} voting power (needs more than 2/3)")
            }
            LedgerError::BadValidatorSet(w) => write!(f, "bad validator set: {w}"),
            LedgerError::BadEvidence(w) => write!(f, "bad evidence: {w}"),
        }
    }
}

/// SHA-256 of `domain` followed by `parts`.
pub fn hash_parts(domain: &[u8], parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    h.update(domain);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Merkle root over `leaves` (RFC 6962 shape: split at the largest power of two below the count; leaves and
/// nodes hashed under different domains, so a leaf can never pass for a node).
pub fn merkle_root<T: AsRef<[u8]>>(leaves: &[T]) -> Hash {
    if leaves.is_empty() {
        return hash_parts(domain::EMPTY, &[]);
    }
    let mut level: Vec<Hash> = leaves.iter().map(|l| hash_parts(domain::LEAF, &[l.as_ref()])).collect();
    // Bottom-up pairing with the odd node promoted: the same tree as RFC 6962's recursive split.
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [a, b] => next.push(hash_parts(domain::NODE, &[a, b])),
                [a] => next.push(*a),
                _ => {}
            }
        }
        level = next;
    }
    level[0]
}

/// One validator: its ed25519 public key and its voting power.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validator {
    pub key: [u8; 32],
    pub power: u64,
}

/// A validated validator set: 1..=[`MAX_VALIDATORS`] distinct valid keys, every power above zero, total
/// power below 2^60 (so `3 * power` never overflows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    keys: Vec<VerifyingKey>,
    total: u64,
    hash: Hash,
}

/// The signature check every validator signature goes through (ed25519 as RFC 8032, `verify` of ed25519-dalek).
pub fn verify_signature(key: &VerifyingKey, msg: &[u8], sig: &[u8; 64]) -> bool {
    key.verify(msg, &Signature::from_bytes(sig)).is_ok()
}

impl ValidatorSet {
    pub fn new(validators: Vec<Validator>) -> Result<Self, LedgerError> {
        if validators.is_empty() {
            return Err(LedgerError::BadValidatorSet("empty"));
        }
        if validators.len() > MAX_VALIDATORS {
            return Err(LedgerError::BadValidatorSet("more than MAX_VALIDATORS"));
        }
        let mut total: u64 = 0;
        let mut keys = Vec::with_capacity(validators.len());
        for (i, v) in validators.iter().enumerate() {
            if v.power == 0 {
                return Err(LedgerError::BadValidatorSet("zero voting power"));
            }
            if validators[..i].iter().any(|w| w.key == v.key) {
                return Err(LedgerError::BadValidatorSet("duplicate key"));
            }
            total = total
                .checked_add(v.power)
                .filter(|t| *t < 1 << 60)
                .ok_or(LedgerError::BadValidatorSet("total power too large"))?;
            keys.push(
                VerifyingKey::from_bytes(&v.key).map_err(|_| LedgerError::BadValidatorSet("not an ed25519 key"))?,
            );
        }
        let mut w = Writer::with_capacity(4 + validators.len() * 40);
        w.u32(validators.len() as u32);
        for v in &validators {
            w.raw(&v.key).u64(v.power);
        }
        let hash = hash_parts(domain::VALSET, &[&w.buf]);
        Ok(ValidatorSet { validators, keys, total, hash })
    }
    pub fn len(&self) -> usize {
        self.validators.len()
    }
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }
    pub fn get(&self, i: u32) -> Option<&Validator> {
        self.validators.get(i as usize)
    }
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }
    pub fn total_power(&self) -> u64 {
        self.total
    }
    pub fn hash(&self) -> Hash {
        self.hash
    }
    pub fn index_of(&self, key: &[u8; 32]) -> Option<u32> {
        self.validators.iter().position(|v| &v.key == key).map(|i| i as u32)
    }
    /// More than 2/3 of the total power.
    pub fn is_quorum(&self, power: u64) -> bool {
        power.saturating_mul(3) > self.total.saturating_mul(2)
    }
    /// More than 1/3 of the total power (at least one honest validator among them).
    pub fn is_one_third(&self, power: u64) -> bool {
        power.saturating_mul(3) > self.total
    }
    /// Verifies `sig` of validator `i` over `msg`.
    pub fn verify(&self, i: u32, msg: &[u8], sig: &[u8; 64]) -> Result<(), LedgerError> {
        let k = self.keys.get(i as usize).ok_or(LedgerError::UnknownValidator(i))?;
        if verify_signature(k, msg, sig) { Ok(()) } else { Err(LedgerError::BadSignature(i)) }
    }
    /// Public key of validator `i` (decompressed once, at construction).
    pub fn verifying_key(&self, i: u32) -> Option<&VerifyingKey> {
        self.keys.get(i as usize)
    }
    /// Round-robin proposer of `(height, round)`, weighted by power (a validator with power p proposes p slots
    /// of every `total` in a row of rounds).
    pub fn proposer(&self, height: u64, round: u32) -> u32 {
        let slot = (height.wrapping_add(round as u64)) % self.total;
        let mut acc = 0u64;
        for (i, v) in self.validators.iter().enumerate() {
            acc += v.power;
            if slot < acc {
                return i as u32;
            }
        }
        0
    }
}

/// Whether a vote is a prevote or a precommit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VoteKind {
    Prevote = 1,
    Precommit = 2,
}

impl VoteKind {
    fn from_u8(v: u8) -> Result<Self, LedgerError> {
        match v {
            1 => Ok(VoteKind::Prevote),
            2 => Ok(VoteKind::Precommit),
            _ => Err(LedgerError::Malformed("vote kind")),
        }
    }
}

/// A signed vote of one validator for a block hash (or nil) at (height, round).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    pub kind: VoteKind,
    pub height: u64,
    pub round: u32,
    pub block: Option<Hash>,
    pub validator: u32,
    pub signature: [u8; 64],
}

/// Encoded size of a [`Vote`].
pub const VOTE_BYTES: usize = 1 + 8 + 4 + 1 + 32 + 4 + 64;

/// The bytes a vote's signature covers: `DOMAIN_VOTE | chain id | kind | height | round | flag | hash`.
pub fn vote_sign_bytes(chain_id: &Hash, kind: VoteKind, height: u64, round: u32, block: Option<&Hash>) -> [u8; 96] {
    let mut m = [0u8; 96];
    let d = domain::VOTE; // 17 bytes
    m[..d.len()].copy_from_slice(d);
    let mut o = d.len();
    m[o..o + 32].copy_from_slice(chain_id);
    o += 32;
    m[o] = kind as u8;
    o += 1;
    m[o..o + 8].copy_from_slice(&height.to_le_bytes());
    o += 8;
    m[o..o + 4].copy_from_slice(&round.to_le_bytes());
    o += 4;
    m[o] = u8::from(block.is_some());
    o += 1;
    if let Some(b) = block {
        m[o..o + 32].copy_from_slice(b);
    }
    m
}

impl Vote {
    /// Signs a vote with `key` as validator `validator`.
    pub fn sign(
        chain_id: &Hash,
        key: &SigningKey,
        kind: VoteKind,
        height: u64,
        round: u32,
        block: Option<Hash>,
        validator: u32,
    ) -> Vote {
        let signature = key.sign(&vote_sign_bytes(chain_id, kind, height, round, block.as_ref())).to_bytes();
        Vote { kind, height, round, block, validator, signature }
    }
    pub fn sign_bytes(&self, chain_id: &Hash) -> [u8; 96] {
        vote_sign_bytes(chain_id, self.kind, self.height, self.round, self.block.as_ref())
    }
    pub fn verify(&self, chain_id: &Hash, vals: &ValidatorSet) -> Result<(), LedgerError> {
        vals.verify(self.validator, &self.sign_bytes(chain_id), &self.signature)
    }
    pub fn encode(&self, w: &mut Writer) {
        w.u8(self.kind as u8).u64(self.height).u32(self.round).u8(u8::from(self.block.is_some()));
        w.raw(&self.block.unwrap_or([0; 32])).u32(self.validator).raw(&self.signature);
    }
    pub fn decode(r: &mut Reader<'_>) -> Result<Vote, LedgerError> {
        let kind = VoteKind::from_u8(r.u8()?)?;
        let height = r.u64()?;
        let round = r.u32()?;
        let has = r.flag()?;
        let h = r.arr32()?;
        if !has && h != [0; 32] {
            return Err(LedgerError::Malformed("nil vote with a hash"));
        }
        let validator = r.u32()?;
        let signature = r.arr64()?;
        Ok(Vote { kind, height, round, block: has.then_some(h), validator, signature })
    }
}

/// Proof that one validator signed two different votes of one kind at one (height, round).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub a: Vote,
    pub b: Vote,
}

impl Evidence {
    /// Canonical form: the vote with the smaller encoding first.
    pub fn new(a: Vote, b: Vote) -> Evidence {
        let (mut wa, mut wb) = (Writer::default(), Writer::default());
        a.encode(&mut wa);
        b.encode(&mut wb);
        if wa.buf <= wb.buf { Evidence { a, b } } else { Evidence { a: b, b: a } }
    }
    pub fn validator(&self) -> u32 {
        self.a.validator
    }
    pub fn height(&self) -> u64 {
        self.a.height
    }
    /// Checks both signatures and that the votes conflict.
    pub fn verify(&self, chain_id: &Hash, vals: &ValidatorSet) -> Result<(), LedgerError> {
        let (a, b) = (&self.a, &self.b);
        if a.validator != b.validator || a.kind != b.kind || a.height != b.height || a.round != b.round {
            return Err(LedgerError::BadEvidence("votes are not of one validator, kind, height and round"));
        }
        if a.block == b.block {
            return Err(LedgerError::BadEvidence("votes do not conflict"));
        }
        if Evidence::new(*a, *b) != *self {
            return Err(LedgerError::BadEvidence("not in canonical order"));
        }
        a.verify(chain_id, vals)?;
        b.verify(chain_id, vals)
    }
    pub fn encode(&self, w: &mut Writer) {
        self.a.encode(w);
        self.b.encode(w);
    }
    pub fn decode(r: &mut Reader<'_>) -> Result<Evidence, LedgerError> {
        Ok(Evidence { a: Vote::decode(r)?, b: Vote::decode(r)? })
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(2 * VOTE_BYTES);
        self.encode(&mut w);
        w.buf
    }
}

/// A block header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub height: u64,
    /// Round at which the block was proposed.
    pub round: u32,
    /// Hash of the previous header (the chain id for block 1).
    pub prev_hash: Hash,
    /// Block time: the proposer's clock, integer ns since the run's start; strictly increasing.
    pub time_ns: u64,
    pub tx_root: Hash,
    /// Application state root after executing blocks `1..height-1`.
    pub state_root: Hash,
    pub validators_hash: Hash,
    pub evidence_root: Hash,
    /// Index of the proposer in the validator set.
    pub proposer: u32,
}

/// Encoded size of a [`Header`].
pub const HEADER_BYTES: usize = 8 + 4 + 32 + 8 + 32 + 32 + 32 + 32 + 4;

impl Header {
    pub fn encode(&self, w: &mut Writer) {
        w.u64(self.height).u32(self.round).raw(&self.prev_hash).u64(self.time_ns).raw(&self.tx_root);
        w.raw(&self.state_root).raw(&self.validators_hash).raw(&self.evidence_root).u32(self.proposer);
    }
    pub fn decode(r: &mut Reader<'_>) -> Result<Header, LedgerError> {
        Ok(Header {
            height: r.u64()?,
            round: r.u32()?,
            prev_hash: r.arr32()?,
            time_ns: r.u64()?,
            tx_root: r.arr32()?,
            state_root: r.arr32()?,
            validators_hash: r.arr32()?,
            evidence_root: r.arr32()?,
            proposer: r.u32()?,
        })
    }
    /// The block hash: SHA-256 of the domain and the canonical header.
    pub fn hash(&self) -> Hash {
        let mut w = Writer::with_capacity(HEADER_BYTES);
        self.encode(&mut w);
        hash_parts(domain::HEADER, &[&w.buf])
    }
}

/// A block: header, ordered transactions (opaque to the chain) and equivocation evidence.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Block {
    pub header: Header,
    pub txs: Vec<Vec<u8>>,
    pub evidence: Vec<Evidence>,
}

impl Block {
    /// Builds a block whose roots match its contents.
    pub fn build(mut header: Header, txs: Vec<Vec<u8>>, evidence: Vec<Evidence>) -> Block {
        header.tx_root = merkle_root(&txs);
        header.evidence_root = evidence_root(&evidence);
        Block { header, txs, evidence }
    }
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }
    pub fn encode(&self, w: &mut Writer) {
        self.header.encode(w);
        w.u32(self.txs.len() as u32);
        for t in &self.txs {
            w.bytes(t);
        }
        w.u32(self.evidence.len() as u32);
        for e in &self.evidence {
            e.encode(w);
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEADER_BYTES + 8 + self.txs.iter().map(|t| t.len() + 4).sum::<usize>());
        self.encode(&mut w);
        w.buf
    }
    pub fn decode(r: &mut Reader<'_>) -> Result<Block, LedgerError> {
        let v = BlockView::decode(r)?;
        Ok(Block { header: v.header, txs: v.txs.iter().map(|t| t.to_vec()).collect(), evidence: v.evidence })
    }
    /// Checks that the roots in the header match the contents.
    pub fn check_roots(&self) -> Result<(), LedgerError> {
        check_roots(&self.header, &self.txs, &self.evidence)
    }
}

/// A decoded block whose transactions borrow the input bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockView<'a> {
    pub header: Header,
    pub txs: Vec<&'a [u8]>,
    pub evidence: Vec<Evidence>,
}

impl<'a> BlockView<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<BlockView<'a>, LedgerError> {
        let start = r.position();
        let header = Header::decode(r)?;
        let n = r.u32()? as usize;
        if n > MAX_BLOCK_TXS {
            return Err(LedgerError::Malformed("too many transactions"));
        }
        let mut txs = Vec::with_capacity(n.min(r.remaining() / 4));
        for _ in 0..n {
            txs.push(r.bytes(crate::app::MAX_PAYLOAD_BYTES + crate::app::ENVELOPE_OVERHEAD_BYTES)?);
        }
        let ne = r.u32()? as usize;
        if ne > MAX_BLOCK_EVIDENCE {
            return Err(LedgerError::Malformed("too much evidence"));
        }
        let mut evidence = Vec::with_capacity(ne.min(r.remaining() / (2 * VOTE_BYTES)));
        for _ in 0..ne {
            evidence.push(Evidence::decode(r)?);
        }
        if r.position() - start > MAX_BLOCK_BYTES {
            return Err(LedgerError::Malformed("block larger than MAX_BLOCK_BYTES"));
        }
        Ok(BlockView { header, txs, evidence })
    }
    /// Checks the transaction and evidence roots against the header.
    pub fn check_roots(&self) -> Result<(), LedgerError> {
        check_roots(&self.header, &self.txs, &self.evidence)
    }
}

/// Checks a block's transaction and evidence roots against its header (owned or borrowed transactions).
fn check_roots<T: AsRef<[u8]>>(header: &Header, txs: &[T], evidence: &[Evidence]) -> Result<(), LedgerError> {
    if merkle_root(txs) != header.tx_root {
        return Err(LedgerError::Mismatch("transaction root"));
    }
    if evidence_root(evidence) != header.evidence_root {
        return Err(LedgerError::Mismatch("evidence root"));
    }
    Ok(())
}

/// Merkle root of a block's evidence.
pub fn evidence_root(ev: &[Evidence]) -> Hash {
    let leaves: Vec<Vec<u8>> = ev.iter().map(Evidence::to_bytes).collect();
    let mut r = merkle_root(&leaves);
    r = hash_parts(domain::EVIDENCE, &[&r]);
    r
}

/// One precommit signature in a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitSig {
    pub validator: u32,
    pub signature: [u8; 64],
}

/// Precommits of more than 2/3 of the voting power for one block at one round.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Commit {
    pub height: u64,
    pub round: u32,
    pub block_hash: Hash,
    /// Ascending by validator index, each validator at most once.
    pub sigs: Vec<CommitSig>,
}

impl Commit {
    pub fn encode(&self, w: &mut Writer) {
        w.u64(self.height).u32(self.round).raw(&self.block_hash).u32(self.sigs.len() as u32);
        for s in &self.sigs {
            w.u32(s.validator).raw(&s.signature);
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(48 + 68 * self.sigs.len());
        self.encode(&mut w);
        w.buf
    }
    pub fn decode(r: &mut Reader<'_>) -> Result<Commit, LedgerError> {
        let height = r.u64()?;
        let round = r.u32()?;
        let block_hash = r.arr32()?;
        let n = r.u32()? as usize;
        if n > MAX_VALIDATORS {
            return Err(LedgerError::Malformed("more signatures than validators"));
        }
        let mut sigs = Vec::with_capacity(n);
        for _ in 0..n {
            sigs.push(CommitSig { validator: r.u32()?, signature: r.arr64()? });
        }
        Ok(Commit { height, round, block_hash, sigs })
    }
    /// Checks every signature and that they hold more than 2/3 of `vals`' power.
    pub fn verify(&self, chain_id: &Hash, vals: &ValidatorSet) -> Result<(), LedgerError> {
        let msg = vote_sign_bytes(chain_id, VoteKind::Precommit, self.height, self.round, Some(&self.block_hash));
        let mut signed = 0u64;
        let mut last: Option<u32> = None;
        for s in &self.sigs {
            if last.is_some_and(|l| s.validator <= l) {
                return Err(LedgerError::DuplicateSigner(s.validator));
            }
            last = Some(s.validator);
            let v = vals.get(s.validator).ok_or(LedgerError::UnknownValidator(s.validator))?;
            vals.verify(s.validator, &msg, &s.signature)?;
            signed += v.power;
        }
        if !vals.is_quorum(signed) {
            return Err(LedgerError::InsufficientPower { signed, total: vals.total_power() });
        }
        Ok(())
    }
    /// The precommit votes this commit is made of.
    pub fn votes(&self) -> impl Iterator<Item = Vote> + '_ {
        self.sigs.iter().map(|s| Vote {
            kind: VoteKind::Precommit,
            height: self.height,
            round: self.round,
            block: Some(self.block_hash),
            validator: s.validator,
            signature: s.signature,
        })
    }
}

/// What a block must follow: the previous header's hash and time, the expected state root and validators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Height of the next block.
    pub height: u64,
    /// Hash of the last block (the chain id before block 1).
    pub prev_hash: Hash,
    /// Time of the last block (0 before block 1).
    pub prev_time_ns: u64,
    /// State root after the last block.
    pub state_root: Hash,
}

/// Checks a block against the chain it extends (height, link, roots, validators, proposer, time, evidence).
/// `round` is the round it was proposed at (checked only when `Some`).
pub fn validate_block(
    chain_id: &Hash,
    vals: &ValidatorSet,
    tip: &Tip,
    block: &Block,
    round: Option<u32>,
) -> Result<(), LedgerError> {
    let h = &block.header;
    if h.height != tip.height {
        return Err(LedgerError::Mismatch("height"));
    }
    if h.prev_hash != tip.prev_hash {
        return Err(LedgerError::Mismatch("previous block hash"));
    }
    if h.time_ns <= tip.prev_time_ns && tip.height > 1 {
        return Err(LedgerError::Mismatch("block time (not after the previous block)"));
    }
    if h.state_root != tip.state_root {
        return Err(LedgerError::Mismatch("state root"));
    }
    if h.validators_hash != vals.hash() {
        return Err(LedgerError::Mismatch("validator-set hash"));
    }
    if let Some(r) = round
        && (h.round != r || h.proposer != vals.proposer(h.height, r))
    {
        return Err(LedgerError::Mismatch("proposer or round"));
    }
    if h.proposer as usize >= vals.len() {
        return Err(LedgerError::UnknownValidator(h.proposer));
    }
    block.check_roots()?;
    for e in &block.evidence {
        e.verify(chain_id, vals)?;
        if e.height() >= h.height {
            return Err(LedgerError::BadEvidence("evidence from the future"));
        }
    }
    Ok(())
}

/// Checks a commit for `block`: same height, hash, and more than 2/3 of the power in valid signatures.
pub fn validate_commit(
    chain_id: &Hash,
    vals: &ValidatorSet,
    block: &Block,
    commit: &Commit,
) -> Result<(), LedgerError> {
    if commit.height != block.header.height {
        return Err(LedgerError::Mismatch("commit height"));
    }
    if commit.block_hash != block.hash() {
        return Err(LedgerError::Mismatch("commit block hash"));
    }
    commit.verify(chain_id, vals)
}

/// The genesis of a chain: name, validators, and the application's genesis bytes (identities, balances).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    pub chain_name: Vec<u8>,
    /// Name of the application whose genesis `app_state` is (so a verifier knows what to re-execute).
    pub app_name: Vec<u8>,
    pub validators: Vec<Validator>,
    pub app_state: Vec<u8>,
}

impl Genesis {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.raw(b"GTGEN1").bytes(&self.chain_name).bytes(&self.app_name).u32(self.validators.len() as u32);
        for v in &self.validators {
            w.raw(&v.key).u64(v.power);
        }
        w.bytes(&self.app_state);
        w.buf
    }
    pub fn decode(bytes: &[u8]) -> Result<Genesis, LedgerError> {
        let mut r = Reader::new(bytes);
        if r.take(6)? != b"GTGEN1" {
            return Err(LedgerError::Malformed("not a genesis file (magic)"));
        }
        let chain_name = r.bytes(256)?.to_vec();
        let app_name = r.bytes(256)?.to_vec();
        let n = r.u32()? as usize;
        if n > MAX_VALIDATORS {
            return Err(LedgerError::BadValidatorSet("more than MAX_VALIDATORS"));
        }
        let mut validators = Vec::with_capacity(n);
        for _ in 0..n {
            validators.push(Validator { key: r.arr32()?, power: r.u64()? });
        }
        let app_state = r.bytes(MAX_BLOCK_BYTES)?.to_vec();
        r.finish()?;
        Ok(Genesis { chain_name, app_name, validators, app_state })
    }
    /// The chain id: hash of the canonical genesis bytes (so every bit of genesis is covered by block 1).
    pub fn chain_id(&self) -> Hash {
        hash_parts(domain::GENESIS, &[&self.to_bytes()])
    }
}

/// A stored block: the block and the commit that finalised it (`u32` block length first).
pub fn encode_stored(block: &Block, commit: &Commit) -> Vec<u8> {
    let b = block.to_bytes();
    let mut w = Writer::with_capacity(b.len() + 100 + 68 * commit.sigs.len());
    w.bytes(&b);
    commit.encode(&mut w);
    w.buf
}

/// Decodes a stored block (exact: no trailing bytes).
pub fn decode_stored(bytes: &[u8]) -> Result<(Block, Commit), LedgerError> {
    let mut r = Reader::new(bytes);
    let b = r.bytes(MAX_BLOCK_BYTES)?;
    let mut rb = Reader::new(b);
    let block = Block::decode(&mut rb)?;
    rb.finish()?;
    let commit = Commit::decode(&mut r)?;
    r.finish()?;
    Ok((block, commit))
}

/// Deterministic signing key from a 32-byte seed (validators and identities of a simulation).
pub fn key_from_seed(seed: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn keys(n: usize) -> Vec<SigningKey> {
        (0..n).map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32])).collect()
    }
    fn set(k: &[SigningKey]) -> ValidatorSet {
        ValidatorSet::new(k.iter().map(|k| Validator { key: k.verifying_key().to_bytes(), power: 1 }).collect())
            .unwrap()
    }

    #[test]
    fn merkle_roots_differ_by_content_order_and_count() {
        let a = merkle_root(&[b"a".as_slice(), b"b"]);
        assert_ne!(a, merkle_root(&[b"b".as_slice(), b"a"]));
        assert_ne!(a, merkle_root(&[b"a".as_slice(), b"b", b"b"]));
        assert_ne!(merkle_root::<&[u8]>(&[]), merkle_root(&[b"".as_slice()]));
        // A leaf cannot pass for an inner node.
        let la = hash_parts(domain::LEAF, &[b"a"]);
        let lb = hash_parts(domain::LEAF, &[b"b"]);
        let fake: Vec<u8> = [la, lb].concat();
        assert_ne!(merkle_root(&[fake.as_slice()]), a);
    }

    #[test]
    fn validator_sets_refuse_duplicates_and_zero_power() {
        let k = keys(2);
        let v = |i: usize, p| Validator { key: k[i].verifying_key().to_bytes(), power: p };
        assert_eq!(ValidatorSet::new(vec![v(0, 1), v(0, 1)]), Err(LedgerError::BadValidatorSet("duplicate key")));
        assert_eq!(ValidatorSet::new(vec![v(0, 1), v(1, 0)]), Err(LedgerError::BadValidatorSet("zero voting power")));
        assert!(ValidatorSet::new(vec![]).is_err());
        let s = ValidatorSet::new(vec![v(0, 2), v(1, 1)]).unwrap();
        assert!(s.is_quorum(3) && !s.is_quorum(2));
        assert_eq!((s.proposer(0, 0), s.proposer(0, 1), s.proposer(0, 2)), (0, 0, 1));
    }

    #[test]
    fn blocks_and_commits_round_trip_and_verify_and_every_bit_flip_is_caught() {
        let k = keys(4);
        let vals = set(&k);
        let chain = [9u8; 32];
        let tip = Tip { height: 1, prev_hash: chain, prev_time_ns: 0, state_root: [3; 32] };
        let header = Header {
            height: 1,
            round: 0,
            prev_hash: chain,
            time_ns: 5,
            state_root: [3; 32],
            validators_hash: vals.hash(),
            proposer: vals.proposer(1, 0),
            ..Header::default()
        };
        let ev = Evidence::new(
            Vote::sign(&chain, &k[2], VoteKind::Prevote, 0, 1, Some([1; 32]), 2),
            Vote::sign(&chain, &k[2], VoteKind::Prevote, 0, 1, None, 2),
        );
        let block = Block::build(header, vec![b"tx-one".to_vec(), b"tx-two".to_vec()], vec![ev]);
        validate_block(&chain, &vals, &tip, &block, Some(0)).unwrap();
        let sigs = (0..3)
            .map(|i| CommitSig {
                validator: i,
                signature: Vote::sign(&chain, &k[i as usize], VoteKind::Precommit, 1, 0, Some(block.hash()), i)
                    .signature,
            })
            .collect();
        let commit = Commit { height: 1, round: 0, block_hash: block.hash(), sigs };
        validate_commit(&chain, &vals, &block, &commit).unwrap();
        let stored = encode_stored(&block, &commit);
        assert_eq!(decode_stored(&stored).unwrap(), (block.clone(), commit.clone()));
        for bit in 0..stored.len() * 8 {
            let mut s = stored.clone();
            s[bit / 8] ^= 1 << (bit % 8);
            let ok = decode_stored(&s).and_then(|(b, c)| {
                validate_block(&chain, &vals, &tip, &b, None)?;
                validate_commit(&chain, &vals, &b, &c)
            });
            assert!(ok.is_err(), "bit {bit} flipped unnoticed");
        }
        // Two signatures of four are not a quorum.
        let short = Commit { sigs: commit.sigs[..2].to_vec(), ..commit.clone() };
        assert_eq!(
            validate_commit(&chain, &vals, &block, &short),
            Err(LedgerError::InsufficientPower { signed: 2, total: 4 })
        );
    }
}
