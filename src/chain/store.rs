//! The ledger on disk and its verifier (`gridtwin ledger verify OUT_DIR`).
//!
//! `OUT_DIR/ledger/genesis.bin` holds the genesis (chain name, application name, validators, application
//! genesis state); `OUT_DIR/ledger/blocks/NNNNNNNN.bin` holds block `N` with the commit that finalised it
//! ([`gridtwin_firmware::ledger::encode_stored`]). Nothing else lives there, and every byte is covered by a
//! hash or a signature: the verifier decodes each file strictly, checks the block against the chain it
//! extends (height, link to the previous hash — the chain id for block 1, which hashes all of genesis —,
//! time, validator-set hash, proposer, transaction and evidence Merkle roots, evidence signatures), checks
//! the commit's signatures and voting power, re-executes every block from genesis and compares each state
//! root the next header carries, and names the first bad file, block and transaction.
//!
//! `OUT_DIR/ledger/head.bin` seals the end of the ledger: `HEAD_MAGIC | height u64 | last block hash [32] |
//! state root after the last block [32]` (little endian). No header carries the state after the last block,
//! so the verifier compares the re-executed final root with this record, and a removed last block (or an
//! altered head) does not pass either.

use super::app::{APP_NAME, RegistryApp};
use gridtwin_firmware::app::{Application, BlockInfo, Envelope, Hash};
use gridtwin_firmware::ledger::{
    Genesis, LedgerError, Tip, ValidatorSet, decode_stored, domain, hash_parts, validate_block, validate_commit,
};
use std::path::{Path, PathBuf};

/// First bytes of `ledger/head.bin`.
pub const HEAD_MAGIC: &[u8; 16] = b"gridtwin/head/v1";
/// Path of the head record inside an output directory.
pub const HEAD_FILE: &str = "ledger/head.bin";

/// The head record: height of the last block (0: none), its hash (the chain id when none), final state root.
pub fn encode_head(height: u64, last_hash: &Hash, state_root: &Hash) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEAD_MAGIC.len() + 72);
    v.extend_from_slice(HEAD_MAGIC);
    v.extend_from_slice(&height.to_le_bytes());
    v.extend_from_slice(last_hash);
    v.extend_from_slice(state_root);
    v
}

/// Decodes a head record strictly (exact length and magic).
pub fn decode_head(b: &[u8]) -> Result<(u64, Hash, Hash), String> {
    if b.len() != HEAD_MAGIC.len() + 72 || &b[..16] != HEAD_MAGIC {
        return Err("not a head record".into());
    }
    let mut h = [0u8; 8];
    h.copy_from_slice(&b[16..24]);
    let (mut last, mut root) = ([0u8; 32], [0u8; 32]);
    last.copy_from_slice(&b[24..56]);
    root.copy_from_slice(&b[56..88]);
    Ok((u64::from_le_bytes(h), last, root))
}

/// Path of block `height` inside an output directory.
pub fn block_file(height: u64) -> String {
    format!("ledger/blocks/{height:08}.bin")
}

/// What an intact ledger holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub blocks: u64,
    pub transactions: u64,
    pub evidence: u64,
    /// State root after the last block.
    pub state_root: Hash,
}

/// Builds the application named in a genesis (None: the hash-chain stand-in of runs without one).
pub fn app_for(genesis: &Genesis) -> Result<Option<Box<dyn Application>>, String> {
    match genesis.app_name.as_slice() {
        b"null" => Ok(None),
        n if n == APP_NAME.as_bytes() => Ok(Some(Box::new(
            RegistryApp::from_genesis(&genesis.app_state).map_err(|e| format!("application genesis: {e}"))?,
        ))),
        n if n == crate::market::world::APP_NAME.as_bytes() => {
            let g =
                crate::market::app::Genesis::decode(&genesis.app_state).map_err(|e| format!("market genesis: {e}"))?;
            g.check().map_err(|e| format!("market genesis: {e}"))?;
            Ok(Some(Box::new(crate::market::app::MarketApp::new(g))))
        }
        other => Err(format!("unknown application `{}`", String::from_utf8_lossy(other))),
    }
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Verifies `out/ledger`; the error names the first bad place.
pub fn verify_dir(out: &Path) -> Result<Verified, String> {
    let dir = out.join("ledger");
    if !dir.is_dir() {
        return Err(format!("{}: no ledger directory", dir.display()));
    }
    // Only genesis.bin and blocks/NNNNNNNN.bin, contiguous from 1.
    let mut heights = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name().to_string_lossy().to_string();
        if name != "genesis.bin" && name != "blocks" && name != "head.bin" {
            return Err(format!("{}: unexpected file in the ledger", e.path().display()));
        }
    }
    let bdir = dir.join("blocks");
    if bdir.is_dir() {
        for e in std::fs::read_dir(&bdir).map_err(|e| format!("{}: {e}", bdir.display()))? {
            let e = e.map_err(|e| e.to_string())?;
            let name = e.file_name().to_string_lossy().to_string();
            let h = name
                .strip_suffix(".bin")
                .filter(|s| s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|h| *h >= 1)
                .ok_or_else(|| format!("{}: unexpected file in the ledger", e.path().display()))?;
            heights.push(h);
        }
    }
    heights.sort_unstable();
    for (k, h) in heights.iter().enumerate() {
        if *h != k as u64 + 1 {
            return Err(format!("{}: block {} is missing", bdir.display(), k + 1));
        }
    }
    let gpath = dir.join("genesis.bin");
    let genesis = Genesis::decode(&read(&gpath)?).map_err(|e| format!("{}: {e}", gpath.display()))?;
    let vals = ValidatorSet::new(genesis.validators.clone()).map_err(|e| format!("{}: {e}", gpath.display()))?;
    let chain_id = genesis.chain_id();
    let mut app = app_for(&genesis).map_err(|e| format!("{}: {e}", gpath.display()))?;
    let mut root = match app.as_mut() {
        Some(a) => a.commit(),
        None => hash_parts(domain::STATE, &[b"null"]),
    };
    let mut tip = Tip { height: 1, prev_hash: chain_id, prev_time_ns: 0, state_root: root };
    let mut v = Verified { blocks: 0, transactions: 0, evidence: 0, state_root: root };
    for h in heights {
        let p: PathBuf = out.join(block_file(h));
        let at = |e: String| format!("{}: block {h}: {e}", p.display());
        let (block, commit) = decode_stored(&read(&p)?).map_err(|e| at(e.to_string()))?;
        if let Err(e) = validate_block(&chain_id, &vals, &tip, &block, None) {
            // Name the transaction when one is to blame.
            if e == LedgerError::Mismatch("transaction root") {
                for (k, tx) in block.txs.iter().enumerate() {
                    if let Err(r) = Envelope::parse(tx).and_then(|env| env.verify()) {
                        return Err(at(format!("transaction {k}: {}", r.reason)));
                    }
                }
            }
            return Err(at(e.to_string()));
        }
        if block.header.proposer != vals.proposer(h, block.header.round) {
            return Err(at("proposer is not the round's proposer".into()));
        }
        validate_commit(&chain_id, &vals, &block, &commit).map_err(|e| at(format!("commit: {e}")))?;
        if commit.round < block.header.round {
            return Err(at("commit round before the proposal round".into()));
        }
        root = match app.as_mut() {
            Some(a) => {
                let info = BlockInfo { height: h, time_ns: block.header.time_ns, proposer: block.header.proposer };
                let txs: Vec<&[u8]> = block.txs.iter().map(|t| t.as_slice()).collect();
                a.execute_block(&info, &txs);
                a.commit()
            }
            None => hash_parts(domain::STATE, &[&block.header.state_root, &block.header.tx_root]),
        };
        v.blocks += 1;
        v.transactions += block.txs.len() as u64;
        v.evidence += block.evidence.len() as u64;
        tip = Tip { height: h + 1, prev_hash: block.hash(), prev_time_ns: block.header.time_ns, state_root: root };
    }
    v.state_root = root;
    let hpath = out.join(HEAD_FILE);
    let (hh, hash, hroot) = decode_head(&read(&hpath)?).map_err(|e| format!("{}: {e}", hpath.display()))?;
    if hh != v.blocks {
        return Err(format!(
            "{}: the head names block {hh} but the ledger ends at block {}",
            hpath.display(),
            v.blocks
        ));
    }
    if hash != tip.prev_hash {
        return Err(format!("{}: the head's block hash differs from block {hh}'s", hpath.display()));
    }
    if hroot != root {
        return Err(format!(
            "{}: state root after block {hh} is {} on re-execution, the head records {}",
            hpath.display(),
            super::hex(&root),
            super::hex(&hroot)
        ));
    }
    Ok(v)
}
