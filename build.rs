//! Embeds `scenarios/`, `models/` and `contracts/` into the binary, so `gridtwin` runs its default scenario (and any shipped
//! scenario's models and networks) from any directory; generates the scenario reference (`gridtwin schema`,
//! docs/scenario.md) from the schema's source.
#[path = "build/reference.rs"]
mod reference;

use std::fs;
use std::path::Path;

fn collect(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    names.sort();
    for p in names {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let r = format!("{rel}/{name}");
        if p.is_dir() {
            collect(&p, &r, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("ron" | "json" | "csv")) {
            out.push(r);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in ["scenarios", "models", "contracts"] {
        println!("cargo:rerun-if-changed={d}");
        collect(&root.join(d), d, &mut files);
    }
    let mut src = String::from(
        "/// Files embedded from the source tree: (path relative to the repository root, contents).\npub static EMBEDDED: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        src.push_str(&format!("    ({f:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/{f}\"))),\n"));
    }
    src.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR").unwrap();
    fs::write(Path::new(&out_dir).join("embedded.rs"), src).unwrap();
    for d in ["src", "firmware/src", "build"] {
        println!("cargo:rerun-if-changed={d}");
    }
    for f in ["Cargo.lock", "Cargo.toml", "firmware/Cargo.toml"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rustc-env=GRIDTWIN_SOURCE_ID={}", source_id(root));
    fs::write(Path::new(&out_dir).join("scenario.md"), reference::generate(root)).unwrap();
}

/// A fingerprint of the code the binary is built from (the simulator's and the firmware's sources, the
/// dependency lock and the shipped models), FNV-1a 64 over every file's path and bytes in path order. A
/// sweep resumes saved results only under the same fingerprint: a rebuilt binary whose code changed reruns.
fn source_id(root: &Path) -> String {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for d in ["src", "firmware/src", "build", "models"] {
        walk(&root.join(d), &mut files);
    }
    for f in ["Cargo.lock", "Cargo.toml", "firmware/Cargo.toml"] {
        files.push(root.join(f));
    }
    files.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for f in &files {
        let rel = f.strip_prefix(root).unwrap_or(f);
        feed(rel.to_string_lossy().as_bytes());
        feed(&fs::read(f).unwrap_or_default());
    }
    format!("{h:016x}")
}
