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

use super::app::{APP_NAME, RegistryApp};
use gridtwin_firmware::app::{Application, BlockInfo, Envelope, Hash};
use gridtwin_firmware::ledger::{
    Genesis, LedgerError, Tip, ValidatorSet, decode_stored, domain, hash_parts, validate_block, validate_commit,
};
use std::path::{Path, PathBuf};

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
        if name != "genesis.bin" && name != "blocks" {
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
    Ok(v)
}
