//! Private readings: what the ledger stores instead of a customer's consumption, and what proves it is sound.
//!
//! A consumption reading `c` (Wh in one slot) goes on the ledger only as a Pedersen commitment
//! `C = c·B + r·B̃` over ristretto255 (hiding: without `r` every `c` is equally likely; binding: the meter cannot
//! open it to another value). Its opening `(c, r)` is sealed for each party entitled to read it (the owner, the
//! grid operator and the auditors not revoked), one box each: X25519 between a fresh ephemeral key and the
//! recipient's key, HKDF-SHA256 to a key, ChaCha20-Poly1305 with the commitment as associated data. Everyone
//! else (the validators included) sees 32 random-looking bytes and boxes they cannot open.
//!
//! The claim against that reading is sealed the same way, and carries one aggregated Bulletproofs range proof
//! (32 bits, 736 bytes) over four values the validators can form from public data alone:
//! `[c, k, c − k, h − k]` with commitments `[C, K, C − K, h·B − K]`, where `k` is the Wh claimed from the `h`
//! Wh of certificates the wallet holds for the slot (public). So every validator checks, without learning
//! `c` or `k`, that the reading is a plausible quantity, that the claim is neither negative nor above the
//! reading, and that it is covered by certificates held. The rest, `c − k`, is the grid import, whose
//! commitment `C − K` needs no proof of its own.
//!
//! Blinding factors, ephemeral keys and the proofs' randomness come from a [`SealRng`] the caller seeds: in
//! the simulator from the signer's identity and nonce (so runs are reproducible), on a real meter from its
//! hardware generator.

use bulletproofs::{BulletproofGens, PedersenGens, RangeProof};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use curve25519_dalek_bp::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek_bp::scalar::Scalar;
use hkdf::Hkdf;
use merlin::Transcript;
use rand_chacha_bp::ChaCha20Rng;
use rand_chacha_bp::rand_core::{RngCore, SeedableRng};
use sha2::{Digest as _, Sha256};
use std::sync::OnceLock;
use x25519_dalek::{PublicKey, StaticSecret};

/// Bits of every range proof: readings and claims up to 4,294,967,295 Wh per slot.
pub const RANGE_BITS: usize = 32;
/// Values in one claim proof (a power of two, as Bulletproofs aggregation needs).
const CLAIM_VALUES: usize = 4;
/// Bytes of a sealed opening: the value (u64 LE) and the blinding scalar.
const OPENING_LEN: usize = 8 + 32;
/// ChaCha20-Poly1305's tag.
const TAG_LEN: usize = 16;
/// Bytes of one box's ciphertext.
pub const BOX_LEN: usize = OPENING_LEN + TAG_LEN;

/// A commitment's opening: the value and its blinding factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opening {
    pub wh: u64,
    pub blinding: Scalar,
}

impl Opening {
    /// The commitment `wh·B + blinding·B̃`.
    pub fn commit(&self) -> [u8; 32] {
        gens().pc.commit(Scalar::from(self.wh), self.blinding).compress().to_bytes()
    }
}

/// One recipient's box: who can open it, and the sealed opening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedBox {
    /// The recipient's participant index in the genesis.
    pub recipient: u32,
    pub ciphertext: Vec<u8>,
}

/// An opening sealed for several recipients under one ephemeral key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Sealed {
    pub ephemeral: [u8; 32],
    pub boxes: Vec<SealedBox>,
}

/// The generators, built once (the Bulletproofs generator table is a few hundred kB).
struct Gens {
    pc: PedersenGens,
    bp: BulletproofGens,
}

fn gens() -> &'static Gens {
    static G: OnceLock<Gens> = OnceLock::new();
    G.get_or_init(|| Gens { pc: PedersenGens::default(), bp: BulletproofGens::new(RANGE_BITS, CLAIM_VALUES) })
}

/// The randomness of sealing and proving: ChaCha20 from a 32-byte seed.
pub struct SealRng(ChaCha20Rng);

impl SealRng {
    /// Seeded from `material` (hashed): in the simulator, the signer's name and nonce.
    pub fn from_material(material: &[u8]) -> SealRng {
        let seed: [u8; 32] = Sha256::digest(material).into();
        SealRng(ChaCha20Rng::from_seed(seed))
    }
    /// A uniformly random blinding factor.
    pub fn blinding(&mut self) -> Scalar {
        let mut b = [0u8; 64];
        self.0.fill_bytes(&mut b);
        Scalar::from_bytes_mod_order_wide(&b)
    }
    fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.0.fill_bytes(&mut b);
        b
    }
}

/// The X25519 key of participant `name` in `domain` (derived, so every run agrees; a real party keeps its own).
pub fn box_secret(domain: &str, name: &str) -> StaticSecret {
    let seed: [u8; 32] = Sha256::digest(format!("gridtwin/market/box/{domain}/{name}").as_bytes()).into();
    StaticSecret::from(seed)
}

/// The public half of [`box_secret`].
pub fn box_public(domain: &str, name: &str) -> [u8; 32] {
    PublicKey::from(&box_secret(domain, name)).to_bytes()
}

/// The AEAD key of one box: HKDF-SHA256 over the X25519 shared secret, bound to both public keys.
fn box_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> [u8; 32] {
    let mut info = Vec::with_capacity(96);
    info.extend_from_slice(b"gridtwin/market/sealed-opening/v1");
    info.extend_from_slice(ephemeral);
    info.extend_from_slice(recipient);
    let hk = Hkdf::<Sha256>::new(None, shared);
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = hk.expand(&info, &mut okm);
    okm
}

/// Seals `opening` for every `(participant index, X25519 public key)` in `recipients`; `aad` (the commitment
/// and its context) is authenticated with each box, so a box cannot be moved to another transaction.
pub fn seal(opening: &Opening, recipients: &[(u32, [u8; 32])], aad: &[u8], rng: &mut SealRng) -> Sealed {
    let eph = StaticSecret::from(rng.bytes32());
    let ephemeral = PublicKey::from(&eph).to_bytes();
    let mut plain = [0u8; OPENING_LEN];
    plain[..8].copy_from_slice(&opening.wh.to_le_bytes());
    plain[8..].copy_from_slice(opening.blinding.as_bytes());
    let boxes = recipients
        .iter()
        .map(|&(recipient, pk)| {
            let shared = eph.diffie_hellman(&PublicKey::from(pk));
            let key = box_key(shared.as_bytes(), &ephemeral, &pk);
            let cipher = ChaCha20Poly1305::new(&key.into());
            // One key per (ephemeral, recipient), used once: a zero nonce is safe.
            let ciphertext = cipher.encrypt(&Nonce::default(), Payload { msg: &plain, aad }).unwrap_or_default();
            SealedBox { recipient, ciphertext }
        })
        .collect();
    Sealed { ephemeral, boxes }
}

/// Opens the box addressed to participant `me` with its X25519 `secret`: `None` when there is none for it, the
/// key is not its, or the box or `aad` was altered. The opening is returned only if it matches `commitment`.
pub fn open(sealed: &Sealed, me: u32, secret: &StaticSecret, aad: &[u8], commitment: &[u8; 32]) -> Option<Opening> {
    let b = sealed.boxes.iter().find(|b| b.recipient == me)?;
    let pk = PublicKey::from(secret).to_bytes();
    let shared = secret.diffie_hellman(&PublicKey::from(sealed.ephemeral));
    let key = box_key(shared.as_bytes(), &sealed.ephemeral, &pk);
    let plain =
        ChaCha20Poly1305::new(&key.into()).decrypt(&Nonce::default(), Payload { msg: &b.ciphertext, aad }).ok()?;
    if plain.len() != OPENING_LEN {
        return None;
    }
    let wh = u64::from_le_bytes(plain[..8].try_into().ok()?);
    let blinding = Option::<Scalar>::from(Scalar::from_canonical_bytes(plain[8..].try_into().ok()?))?;
    let o = Opening { wh, blinding };
    (o.commit() == *commitment).then_some(o)
}

/// The transcript a claim proof is bound to: the ledger's domain, the wallet and the slot.
fn claim_transcript(domain: &str, wallet: u32, slot: u32) -> Transcript {
    let mut t = Transcript::new(b"gridtwin/market/claim/v1");
    t.append_message(b"domain", domain.as_bytes());
    t.append_u64(b"wallet", wallet as u64);
    t.append_u64(b"slot", slot as u64);
    t
}

fn point(c: &[u8; 32]) -> Option<RistrettoPoint> {
    CompressedRistretto(*c).decompress()
}

/// Why a claim cannot be proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProveError {
    /// The claim is above the reading or above the certificates held, or a value needs more than 32 bits.
    OutOfRange,
}

/// Proves the claim `claim` against the reading `reading` with `held_wh` Wh of certificates held.
pub fn prove_claim(
    domain: &str,
    wallet: u32,
    slot: u32,
    reading: &Opening,
    claim: &Opening,
    held_wh: u64,
    rng: &mut SealRng,
) -> Result<Vec<u8>, ProveError> {
    let (c, k) = (reading.wh, claim.wh);
    let limit = 1u64 << RANGE_BITS;
    if k > c || k > held_wh || c >= limit || held_wh - k >= limit {
        return Err(ProveError::OutOfRange);
    }
    let values = [c, k, c - k, held_wh - k];
    let blindings = [reading.blinding, claim.blinding, reading.blinding - claim.blinding, -claim.blinding];
    let g = gens();
    let mut t = claim_transcript(domain, wallet, slot);
    let (proof, _) =
        RangeProof::prove_multiple_with_rng(&g.bp, &g.pc, &mut t, &values, &blindings, RANGE_BITS, &mut rng.0)
            .map_err(|_| ProveError::OutOfRange)?;
    Ok(proof.to_bytes())
}

/// Checks a claim proof from public data only: the reading's commitment, the claim's, and the Wh held.
pub fn verify_claim(
    domain: &str,
    wallet: u32,
    slot: u32,
    reading: &[u8; 32],
    claim: &[u8; 32],
    held_wh: u64,
    proof: &[u8],
) -> bool {
    let (Some(cp), Some(kp)) = (point(reading), point(claim)) else { return false };
    let Ok(proof) = RangeProof::from_bytes(proof) else { return false };
    let g = gens();
    let held = g.pc.commit(Scalar::from(held_wh), Scalar::ZERO);
    let commitments = [cp.compress(), kp.compress(), (cp - kp).compress(), (held - kp).compress()];
    let mut t = claim_transcript(domain, wallet, slot);
    // The verifier's randomness only batches its own checks; any seed gives the same verdict.
    let mut rng = ChaCha20Rng::from_seed([0; 32]);
    proof.verify_multiple_with_rng(&g.bp, &g.pc, &mut t, &commitments, RANGE_BITS, &mut rng).is_ok()
}

/// The commitment of `c − k` (the grid import) from the reading's and the claim's: what an entitled party opens
/// with `(c − k, r_c − r_k)`.
pub fn import_commitment(reading: &[u8; 32], claim: &[u8; 32]) -> Option<[u8; 32]> {
    Some((point(reading)? - point(claim)?).compress().to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(tag: &str) -> SealRng {
        SealRng::from_material(tag.as_bytes())
    }

    #[test]
    fn an_opening_is_read_by_its_recipients_only() {
        let mut r = rng("a");
        let o = Opening { wh: 1234, blinding: r.blinding() };
        let c = o.commit();
        let rec = [(3, box_public("d", "owner/a")), (9, box_public("d", "operator"))];
        let s = seal(&o, &rec, &c, &mut r);
        assert_eq!(s.boxes.len(), 2);
        assert!(s.boxes.iter().all(|b| b.ciphertext.len() == BOX_LEN));
        assert_eq!(open(&s, 3, &box_secret("d", "owner/a"), &c, &c), Some(o));
        assert_eq!(open(&s, 9, &box_secret("d", "operator"), &c, &c), Some(o));
        // A validator has no box; another party's key does not open the owner's box.
        assert_eq!(open(&s, 5, &box_secret("d", "validator"), &c, &c), None);
        assert_eq!(open(&s, 3, &box_secret("d", "validator"), &c, &c), None);
        // Moved to another commitment (the associated data), the box does not open.
        let other = Opening { wh: 1234, blinding: r.blinding() }.commit();
        assert_eq!(open(&s, 3, &box_secret("d", "owner/a"), &other, &other), None);
        // A flipped ciphertext bit does not open.
        let mut bad = s.clone();
        bad.boxes[0].ciphertext[0] ^= 1;
        assert_eq!(open(&bad, 3, &box_secret("d", "owner/a"), &c, &c), None);
    }

    #[test]
    fn the_same_value_commits_to_unrelated_bytes() {
        let mut r = rng("b");
        let a = Opening { wh: 500, blinding: r.blinding() }.commit();
        let b = Opening { wh: 500, blinding: r.blinding() }.commit();
        assert_ne!(a, b);
    }

    #[test]
    fn a_claim_proof_holds_within_the_reading_and_the_certificates_and_nowhere_else() {
        let mut r = rng("c");
        let reading = Opening { wh: 900, blinding: r.blinding() };
        let (rc, held) = (reading.commit(), 700);
        for k in [0, 1, 450, 700] {
            let claim = Opening { wh: k, blinding: r.blinding() };
            let p = prove_claim("d", 4, 17, &reading, &claim, held, &mut r).expect("provable");
            assert_eq!(p.len(), 736);
            assert!(verify_claim("d", 4, 17, &rc, &claim.commit(), held, &p), "k = {k}");
            // Bound to wallet, slot, domain and the held amount.
            assert!(!verify_claim("d", 5, 17, &rc, &claim.commit(), held, &p));
            assert!(!verify_claim("d", 4, 18, &rc, &claim.commit(), held, &p));
            assert!(!verify_claim("e", 4, 17, &rc, &claim.commit(), held, &p));
            assert!(!verify_claim("d", 4, 17, &rc, &claim.commit(), held + 1, &p));
            let mut bad = p.clone();
            bad[100] ^= 1;
            assert!(!verify_claim("d", 4, 17, &rc, &claim.commit(), held, &bad));
        }
        // Above the certificates held, or above the reading: the honest prover refuses...
        for k in [701, 901] {
            let claim = Opening { wh: k, blinding: r.blinding() };
            assert_eq!(prove_claim("d", 4, 17, &reading, &claim, held, &mut r), Err(ProveError::OutOfRange));
        }
        // ... and a proof made for a smaller claim does not pass for a larger commitment.
        let small = Opening { wh: 100, blinding: r.blinding() };
        let p = prove_claim("d", 4, 17, &reading, &small, held, &mut r).expect("provable");
        let big = Opening { wh: 800, blinding: small.blinding };
        assert!(!verify_claim("d", 4, 17, &rc, &big.commit(), held, &p));
        // The import's commitment opens to c - k with r_c - r_k.
        let ic = import_commitment(&rc, &small.commit()).expect("points");
        assert_eq!(ic, Opening { wh: 800, blinding: reading.blinding - small.blinding }.commit());
        // Garbage is refused, never a panic.
        assert!(!verify_claim("d", 4, 17, &[0xff; 32], &small.commit(), held, &p));
        assert!(!verify_claim("d", 4, 17, &rc, &small.commit(), held, &p[..10]));
    }
}
